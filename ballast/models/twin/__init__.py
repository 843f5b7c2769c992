"""The digital twin (issue 6): a day-by-day simulation of the network, its baselines and the
perfect-information bound. Pure code: no files, no database, no Prefect."""
