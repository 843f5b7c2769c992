"""The ingest flow under a real Prefect API (the test harness starts Prefect's temporary server)."""

from __future__ import annotations

import pytest

from ballast.flows.ingest import IngestParams, ingest_flow
from ballast.io.landing import land_frame
from ballast.io.warehouse import open_warehouse, snapshot_as_of
from ballast.settings import Settings
from tests import factories as f


@pytest.mark.slow
def test_ingest_flow_stages_every_extract(prefect_harness, ballast_home):
    # given a delivered network
    s = Settings()
    for name, frame in f.network().items():
        land_frame(frame, s.inbox_dir, name, f.AS_OF)
    # when the flow runs
    state = ingest_flow(IngestParams(now=f.AS_OF), return_state=True)
    # then it completed and every extract passed its gate
    assert state.is_completed()
    result = state.result()
    assert {o.status for o in result["ingest"].outcomes} == {"landed"}
    assert sorted((g.extract, g.outcome) for g in result["gates"]) == sorted((n, "pass") for n in f.network())
    with open_warehouse(s.db_path, read_only=True) as con:
        assert snapshot_as_of(con, "inventory").height == f.inventory().height


def test_ingest_params_reject_unknown_keys():
    with pytest.raises(ValueError, match="extra"):
        IngestParams.model_validate({"now": None, "inbox": "/etc"})
