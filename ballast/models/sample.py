"""A synthetic but realistic distribution network that follows the inbox contract (DESIGN.md §2).

`generate_network(spec)` returns one polars frame per extract: suppliers, plants, DCs and hubs;
SKUs with costs, volumes and shelf lives; purchase, replenishment and lateral lanes; an
inventory snapshot with deliberate imbalance (the same SKU short at one hub and in excess at a
neighbour); shipments in transit; open purchase orders; daily demand history with smooth,
trending, intermittent, lumpy and promotional series; and an ERP book stock that disagrees
with the WMS for a few rows.

Everything is drawn from random streams keyed by the seed and a stable name (a site id, a SKU
id, a lane), so the same spec always gives the same frames and adding a hub does not reshuffle
the demand of the others. Volumes are in litres; quantities are integer-valued floats.

`SIZES` names three networks (S = the default, M, L); `sku_patterns(spec)` tells which demand
pattern each SKU was drawn from, for tests and forecast evaluation.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Final

import numpy as np
import polars as pl
from numpy.typing import NDArray

from ballast.models.contract import EXTRACTS, Kind

logger = logging.getLogger(__name__)

DEFAULT_AS_OF: Final = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)

POLARS_DTYPES: Final[dict[Kind, pl.DataType]] = {
    Kind.STR: pl.String(),
    Kind.INT: pl.Int64(),
    Kind.FLOAT: pl.Float64(),
    Kind.DATE: pl.Date(),
    Kind.TIMESTAMP: pl.Datetime("us", "UTC"),
}

PATTERNS: Final = ("smooth", "trend", "intermittent", "lumpy", "promo")
SMOOTH, TREND, INTERMITTENT, LUMPY, PROMO = range(5)
# SKUs take their pattern from this 20-long cycle (35% smooth, 15% trend, 25% intermittent,
# 10% lumpy, 15% promo), so any network of 20+ SKUs holds every pattern, whatever the seed.
_PATTERN_CYCLE: Final = (0, 2, 1, 4, 3, 0, 2, 0, 4, 1, 2, 0, 3, 0, 2, 1, 0, 4, 2, 0)

# Hub countries rotate through this list; CH is fifth, so HUB-CH-01 exists from 5 hubs on, and
# DE, FR and IT get a second hub within the first 12 (lateral transfers need neighbours).
_HUB_COUNTRIES: Final = ("DE", "FR", "IT", "NL", "CH", "BE", "AT", "PL", "ES", "DE", "FR", "IT")
_DC_COUNTRIES: Final = ("DE", "FR", "NL", "IT", "PL", "ES", "AT", "BE")
_PLANT_COUNTRIES: Final = ("DE", "PL", "IT", "FR", "ES")
# Which DC countries serve a hub country, best first: the first existing one is the home DC,
# the next one a possible second source.
_DC_PREFERENCE: Final[dict[str, tuple[str, ...]]] = {
    "DE": ("DE", "NL", "AT"),
    "AT": ("AT", "DE", "IT"),
    "CH": ("DE", "FR", "IT"),
    "FR": ("FR", "NL", "BE"),
    "BE": ("BE", "NL", "FR"),
    "NL": ("NL", "DE", "BE"),
    "IT": ("IT", "FR", "AT"),
    "PL": ("PL", "DE"),
    "ES": ("ES", "FR"),
}
# Hubs of neighbouring countries in one region get lateral lanes between their first hubs.
_REGION: Final = {"DE": "DACH", "AT": "DACH", "CH": "DACH", "FR": "WEST", "BE": "WEST", "NL": "WEST"}
# Forbidden by the default policy (no Swiss customs paperwork), but present in the TMS.
FORBIDDEN_LANE: Final = ("DC-FR-01", "HUB-CH-01", "truck")

# (site_id, country, mode, lead range, price factor vs median unit cost, plants served)
_SUPPLIERS: Final = (
    ("SUP-01", "CZ", "truck", (7, 10), (0.97, 1.05), "all"),
    ("SUP-02", "TR", "rail", (14, 21), (0.88, 0.95), "all"),
    ("SUP-03", "CN", "sea", (42, 42), (0.75, 0.82), "first"),
)
_CAPACITY_LIMITED_SUPPLIER: Final = "SUP-02"

# Mon..Sun shape of retail demand at hubs and of B2B orders at DCs.
_HUB_WEEK: Final = np.array([0.92, 0.95, 0.98, 1.02, 1.18, 1.35, 0.60])
_DC_WEEK: Final = np.array([1.15, 1.15, 1.2, 1.15, 1.1, 0.25, 0.0])
_EPOCH: Final = date(1970, 1, 1)


@dataclass(frozen=True)
class SampleSpec:
    """What to generate: network size, history length, snapshot time and seed."""

    seed: int = 7
    hubs: int = 12
    skus: int = 300
    history_days: int = 730
    as_of: datetime = DEFAULT_AS_OF
    plants: int = 2
    dcs: int = 4
    carried_share: tuple[float, float] = (0.6, 0.8)  # share of SKUs a hub sells, drawn per hub
    dc_direct_share: float = 0.15  # share of SKUs with direct B2B demand at each DC
    perishable_share: float = 0.12
    tight_hubs: int = 2  # hubs whose stock fills >= 90% of their storage
    shipments_per_lane: tuple[int, int] = (6, 14)
    book_mismatch_share: float = 0.005  # ERP book rows that disagree with the WMS by more than 2%

    def __post_init__(self) -> None:
        if self.as_of.tzinfo is None or self.as_of.utcoffset() != timedelta(0):
            raise ValueError(f"as_of must be timezone-aware UTC, got {self.as_of!r}")
        if self.hubs < 5:
            raise ValueError(f"hubs must be >= 5 so that HUB-CH-01 exists, got {self.hubs}")
        if self.dcs < 2:
            raise ValueError(f"dcs must be >= 2 (DC-DE-01 and DC-FR-01 serve HUB-CH-01), got {self.dcs}")
        if self.plants < 1 or self.skus < 1:
            raise ValueError("plants and skus must be >= 1")
        if self.history_days < 28:
            raise ValueError(f"history_days must be >= 28, got {self.history_days}")
        lo, hi = self.carried_share
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"carried_share must satisfy 0 < lo <= hi <= 1, got {self.carried_share}")
        if not 0 <= self.tight_hubs <= self.hubs:
            raise ValueError(f"tight_hubs must be in [0, hubs], got {self.tight_hubs}")

    @property
    def own_sites(self) -> int:
        """Plants + DCs + hubs (suppliers are not counted)."""
        return self.plants + self.dcs + self.hubs

    @property
    def as_of_date(self) -> date:
        return self.as_of.astimezone(UTC).date()

    @property
    def first_day(self) -> date:
        """First day of demand history; the last one is the day before `as_of`."""
        return self.as_of_date - timedelta(days=self.history_days)


SIZES: Final[dict[str, SampleSpec]] = {
    "S": SampleSpec(),  # 18 own sites x 300 SKUs
    "M": SampleSpec(hubs=14, skus=1_000),  # 20 own sites x 1,000 SKUs
    # 50 own sites x 5,000 SKUs. Hubs carry 30-45% of the range (not 60-80%) so demand stays
    # ~56M rows instead of ~100M: generation + Parquet in about a minute and a few GB of RAM.
    "L": SampleSpec(
        plants=3,
        dcs=7,
        hubs=40,
        skus=5_000,
        carried_share=(0.3, 0.45),
        dc_direct_share=0.05,
        tight_hubs=3,
        shipments_per_lane=(4, 10),
    ),
}


# --------------------------------------------------------------------------------------------
# random streams


def _rng(seed: int, *keys: str) -> np.random.Generator:
    """Return a generator keyed by the seed and stable names, independent of all other draws."""
    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) for k in keys)])


# --------------------------------------------------------------------------------------------
# items and their demand profiles


@dataclass(frozen=True)
class _Items:
    sku: list[str]
    pattern: NDArray[np.int8]
    rate: NDArray[np.float64]  # mean units/day (continuous) or occurrence probability (sporadic)
    size_mean: NDArray[np.float64]  # mean extra units per occurrence (sporadic patterns)
    growth: NDArray[np.float64]  # log-growth per year (trend)
    season_amp: NDArray[np.float64]
    season_phase: NDArray[np.float64]
    unit_cost: NDArray[np.float64]
    unit_price: NDArray[np.float64]  # NaN: no list price
    holding: NDArray[np.float64]
    volume: NDArray[np.float64]
    shelf_life: NDArray[np.int64]  # 0: not perishable
    promo: dict[int, NDArray[np.float64]]  # SKU index -> daily uplift multiplier

    @property
    def popularity(self) -> NDArray[np.float64]:
        """Expected units/day at a scale-1 hub, comparable across patterns."""
        sporadic = np.isin(self.pattern, (INTERMITTENT, LUMPY))
        return np.where(sporadic, self.rate * (1 + self.size_mean), self.rate)


def _promo_calendar(rng: np.random.Generator, days: int) -> NDArray[np.float64]:
    """Multi-day promotions every 5-11 weeks, each lifting demand 2.5-5x."""
    mult = np.ones(days)
    t = int(rng.integers(0, 40))
    while t < days:
        length = int(rng.integers(3, 11))
        mult[t : t + length] = rng.uniform(2.5, 5.0)
        t += length + int(rng.integers(35, 80))
    return mult


def _items(spec: SampleSpec) -> _Items:
    # One stream per SKU, so SKU-00001 looks the same whatever the number of SKUs.
    n = spec.skus
    offset = int(_rng(spec.seed, "patterns").integers(len(_PATTERN_CYCLE)))
    sku = [f"SKU-{i:05d}" for i in range(1, n + 1)]
    pattern = np.array([_PATTERN_CYCLE[(i + offset) % len(_PATTERN_CYCLE)] for i in range(n)], np.int8)
    u = np.empty((12, n))  # uniforms, one row per attribute below (u[6] is spare)
    z = np.empty((2, n))  # standard normals for the log-normal attributes
    for i, s in enumerate(sku):
        rng = _rng(spec.seed, "item", s)
        u[:, i] = rng.random(12)
        z[:, i] = rng.standard_normal(2)

    def lognormal(col: NDArray[np.float64], median: float, sigma: float) -> NDArray[np.float64]:
        return median * np.exp(sigma * col)

    rate = np.select(
        [pattern == SMOOTH, pattern == TREND, pattern == PROMO, pattern == INTERMITTENT, pattern == LUMPY],
        [
            3 + lognormal(z[0], 5, 0.8),
            2 + lognormal(z[0], 4, 0.8),
            2 + lognormal(z[0], 4, 0.7),
            0.08 + 0.32 * u[0],  # ADI 2.5-12: clearly intermittent
            0.04 + 0.26 * u[0],
        ],
    )
    size_mean = np.where(pattern == LUMPY, 4 + 36 * u[1], 0.3 + 1.7 * u[1])
    growth = np.where(pattern == TREND, np.where(u[2] < 2 / 3, 1, -1) * (0.3 + 0.4 * u[3]), 0.0)
    season_amp = np.where(pattern == SMOOTH, 0.15 + 0.25 * u[4], 0.15 * u[4])
    season_phase = 365.25 * u[5]
    unit_cost = np.maximum(0.5, np.round(lognormal(z[1], 12, 0.9), 2))
    margin = 1.3 + u[7]
    unit_price = np.where(u[8] < 0.01, np.nan, np.round(unit_cost * margin, 2))
    holding = np.round(unit_cost * (0.20 + 0.05 * u[9]) / 365, 6)
    volume = np.round(0.5 * np.exp(u[10] * np.log(24.0)), 3)  # log-uniform, 0.5-12 litres
    shelf_life = np.where(u[11] < spec.perishable_share, 30 + np.floor(u[11] / spec.perishable_share * 91), 0)
    promo = {
        int(i): _promo_calendar(_rng(spec.seed, "promo", sku[i]), spec.history_days)
        for i in np.flatnonzero(pattern == PROMO)
    }
    return _Items(
        sku=sku,
        pattern=pattern,
        rate=rate,
        size_mean=size_mean,
        growth=growth,
        season_amp=season_amp,
        season_phase=season_phase,
        unit_cost=unit_cost,
        unit_price=unit_price,
        holding=holding,
        volume=volume,
        shelf_life=shelf_life.astype(np.int64),
        promo=promo,
    )


def sku_patterns(spec: SampleSpec) -> pl.DataFrame:
    """Return the demand pattern each SKU was generated with (ground truth for tests and forecasts)."""
    items = _items(spec)
    return pl.DataFrame(
        {"sku": items.sku, "pattern": [PATTERNS[p] for p in items.pattern]},
        schema={"sku": pl.String, "pattern": pl.String},
    )


# --------------------------------------------------------------------------------------------
# sites


@dataclass
class _Sites:
    site_id: list[str] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    echelon: list[int] = field(default_factory=list)
    country: list[str] = field(default_factory=list)
    home_dc: dict[int, int] = field(default_factory=dict)  # hub index -> DC index
    second_dc: dict[int, int] = field(default_factory=dict)

    def add(self, site_id: str, kind: str, echelon: int, country: str) -> int:
        self.site_id.append(site_id)
        self.kind.append(kind)
        self.echelon.append(echelon)
        self.country.append(country)
        return len(self.site_id) - 1

    def of_kind(self, kind: str) -> list[int]:
        return [i for i, k in enumerate(self.kind) if k == kind]


def _numbered(countries: Sequence[str], n: int, prefix: str) -> list[tuple[str, str]]:
    """`n` site ids cycling through `countries`, numbered per country: DC-DE-01, DC-FR-01, ..."""
    seen: dict[str, int] = {}
    out = []
    for k in range(n):
        cc = countries[k % len(countries)]
        seen[cc] = seen.get(cc, 0) + 1
        out.append((f"{prefix}-{cc}-{seen[cc]:02d}", cc))
    return out


def _sites(spec: SampleSpec) -> _Sites:
    sites = _Sites()
    for site_id, country, *_ in _SUPPLIERS:
        sites.add(site_id, "supplier", 0, country)
    for site_id, cc in _numbered(_PLANT_COUNTRIES, spec.plants, "PLT"):
        sites.add(site_id, "plant", 1, cc)
    dcs_by_country: dict[str, list[int]] = {}
    for site_id, cc in _numbered(_DC_COUNTRIES, spec.dcs, "DC"):
        dcs_by_country.setdefault(cc, []).append(sites.add(site_id, "dc", 2, cc))
    for site_id, cc in _numbered(_HUB_COUNTRIES, spec.hubs, "HUB"):
        h = sites.add(site_id, "hub", 3, cc)
        number = int(site_id[-2:])
        sources = [
            dcs[(number - 1) % len(dcs)] for pref in _DC_PREFERENCE[cc] if (dcs := dcs_by_country.get(pref))
        ]
        sources = list(dict.fromkeys(sources)) or [dcs_by_country["DE"][0]]
        sites.home_dc[h] = sources[0]
        # CH always has its second source (DC-FR-01: the forbidden lane); others half the time.
        if len(sources) > 1 and (cc == "CH" or _rng(spec.seed, "second-dc", site_id).random() < 0.5):
            sites.second_dc[h] = sources[1]
    return sites


# --------------------------------------------------------------------------------------------
# demand


@dataclass(frozen=True)
class _Demand:
    frame: pl.DataFrame
    pair_site: NDArray[np.int32]  # one entry per (site, sku) series
    pair_sku: NDArray[np.int32]
    daily_ref: NDArray[np.float64]  # recent mean units/day, what stock is sized against


def _carried(spec: SampleSpec, sites: _Sites, items: _Items) -> dict[int, NDArray[np.int32]]:
    """SKU indices with demand at each site: a share of the range per hub, popular SKUs first."""
    pop = items.popularity
    pct = (np.argsort(np.argsort(pop)) + 0.5) / len(pop)  # popularity percentile
    out: dict[int, NDArray[np.int32]] = {}
    for s in sites.of_kind("dc"):
        u = _rng(spec.seed, "carry", sites.site_id[s]).random(spec.skus)
        out[s] = np.flatnonzero(u < spec.dc_direct_share).astype(np.int32)
    for s in sites.of_kind("hub"):
        rng = _rng(spec.seed, "carry", sites.site_id[s])
        share = rng.uniform(*spec.carried_share)
        u = rng.random(spec.skus)
        out[s] = np.flatnonzero(u < np.clip(share * (0.6 + 0.8 * pct), 0.02, 0.98)).astype(np.int32)
    return out


def _site_demand(
    rng: np.random.Generator,
    items: _Items,
    skus: NDArray[np.int32],
    scale: float,
    week: NDArray[np.float64],
    epoch_days: NDArray[np.int64],
) -> NDArray[np.float64]:
    """Daily units (len(skus) x days) of one site: every pattern drawn in one vectorised block."""
    n, days = len(skus), len(epoch_days)
    qty = np.zeros((n, days))
    pattern = items.pattern[skus]
    t_rel = (np.arange(days) - (days - 1)) / 365.0  # trends are anchored on today's level
    dow = (epoch_days + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday

    cont = np.flatnonzero(np.isin(pattern, (SMOOTH, TREND, PROMO)))
    if len(cont):
        k = skus[cont]
        season = 1 + items.season_amp[k, None] * np.sin(
            2 * np.pi * (epoch_days[None, :] - items.season_phase[k, None]) / 365.25
        )
        mu = (items.rate[k, None] * scale) * week[dow][None, :] * season
        mu *= np.exp(items.growth[k, None] * t_rel[None, :])
        for row, sku in enumerate(k):
            if sku in items.promo:
                mu[row] *= items.promo[int(sku)]
        # Gamma-Poisson: a little more day-to-day noise than Poisson, as real sales have.
        qty[cont] = rng.poisson(mu * rng.gamma(25.0, 1 / 25.0, size=mu.shape))

    for code, p_max in ((INTERMITTENT, 0.5), (LUMPY, 0.45)):
        rows = np.flatnonzero(pattern == code)
        if not len(rows):
            continue
        k = skus[rows]
        p = np.clip(items.rate[k] * math.sqrt(scale), 0.02, p_max)  # cap keeps ADI >= 2
        occurs = rng.random((len(rows), days)) < p[:, None]
        if code == INTERMITTENT:
            size = 1 + rng.poisson(np.broadcast_to(items.size_mean[k, None], occurs.shape))
        else:  # heavy-tailed order sizes: CV^2 of non-zero demand well above 0.49
            m = items.size_mean[k, None] * scale
            size = 1 + rng.negative_binomial(0.7, np.broadcast_to(0.7 / (0.7 + m), occurs.shape))
        qty[rows] = occurs * size
    return qty


def _demand(spec: SampleSpec, sites: _Sites, items: _Items, carried: dict[int, NDArray[np.int32]]) -> _Demand:
    days = spec.history_days
    first = (spec.first_day - _EPOCH).days
    epoch_days = np.arange(first, first + days, dtype=np.int64)
    order = sorted(carried)  # site order: DCs, then hubs
    n_pairs = sum(len(carried[s]) for s in order)
    # Preallocated once: L holds ~56M rows, so no per-site frames to concatenate later.
    qty = np.empty(n_pairs * days)
    pair_site = np.empty(n_pairs, np.int32)
    pair_sku = np.empty(n_pairs, np.int32)
    daily_ref = np.empty(n_pairs)
    recent = min(28, days)
    at = 0
    for s in order:
        skus = carried[s]
        n = len(skus)
        if n == 0:
            continue
        site_rng = _rng(spec.seed, "site", sites.site_id[s])
        if sites.kind[s] == "hub":
            scale = float(np.clip(site_rng.lognormal(0.0, 0.35), 0.5, 2.0))
            week = _HUB_WEEK * site_rng.uniform(0.92, 1.08, 7)
        else:
            scale = float(site_rng.uniform(1.0, 2.0))
            week = _DC_WEEK.copy()
        week = week / week.mean()
        block = _site_demand(
            _rng(spec.seed, "demand", sites.site_id[s]), items, skus, scale, week, epoch_days
        )
        qty[at * days : (at + n) * days] = block.ravel()
        pair_site[at : at + n] = s
        pair_sku[at : at + n] = skus
        # A sporadic series may have sold nothing lately; half its quarterly mean still sizes stock.
        daily_ref[at : at + n] = np.maximum(
            block[:, -recent:].mean(axis=1), 0.5 * block[:, -min(91, days) :].mean(axis=1)
        )
        at += n
        del block
    frame = pl.DataFrame(
        {
            "date": pl.Series(np.tile(epoch_days.astype(np.int32), n_pairs)).cast(pl.Date),
            "site_id": pl.Series(sites.site_id).gather(np.repeat(pair_site.astype(np.uint32), days)),
            "sku": pl.Series(items.sku).gather(np.repeat(pair_sku.astype(np.uint32), days)),
            "qty": pl.Series(qty),
        }
    )
    logger.info("generated %d demand rows for %d series", frame.height, n_pairs)
    return _Demand(frame=frame, pair_site=pair_site, pair_sku=pair_sku, daily_ref=daily_ref)


# --------------------------------------------------------------------------------------------
# inventory


def _by_site(
    site: NDArray[np.int32], sku: NDArray[np.int32], values: NDArray[np.float64]
) -> dict[int, tuple[NDArray[np.int32], NDArray[np.float64]]]:
    """(SKU indices, values) of each site, rows kept in order."""
    return {int(s): (sku[site == s], values[site == s]) for s in np.unique(site)}


@dataclass(frozen=True)
class _Stock:
    site: NDArray[np.int32]  # one entry per site x SKU carried
    sku: NDArray[np.int32]
    on_hand: NDArray[np.float64]
    daily_ref: NDArray[np.float64]


def _stock(spec: SampleSpec, sites: _Sites, items: _Items, demand: _Demand) -> _Stock:
    """On-hand per site x SKU: days of cover x recent demand, deliberately out of balance."""
    parts: list[tuple[int, NDArray[np.int32], NDArray[np.float64], NDArray[np.float64]]] = []
    by_site = _by_site(demand.pair_site, demand.pair_sku, demand.daily_ref)
    hubs = sites.of_kind("hub")
    for h in hubs:
        skus, ref = by_site.get(h, (np.empty(0, np.int32), np.empty(0)))
        rng = _rng(spec.seed, "inventory", sites.site_id[h])
        bias = rng.lognormal(0.0, 0.3)  # some hubs run lean, others heavy
        r = rng.random(len(skus))
        cover = np.select(
            [r < 0.12, r < 0.30],
            [
                np.where(rng.random(len(skus)) < 0.4, 0.0, rng.uniform(0, 4, len(skus))),
                rng.uniform(42, 120, len(skus)),
            ],
            rng.uniform(7, 28, len(skus)) * bias,
        )
        parts.append((h, skus, cover, ref))
    _set_neighbour_imbalance(spec, sites, items, parts)

    skus_n = spec.skus
    for d in sites.of_kind("dc"):
        # A DC stocks what its home hubs sell plus its own direct demand.
        need = np.zeros(skus_n)
        for h, skus, _, ref in parts:
            if sites.home_dc.get(h) == d:
                np.add.at(need, skus, ref)
        own_skus, own_ref = by_site.get(d, (np.empty(0, np.int32), np.empty(0)))
        np.add.at(need, own_skus, own_ref)
        carried = np.union1d(np.flatnonzero(need > 0), own_skus).astype(np.int32)
        rng = _rng(spec.seed, "inventory", sites.site_id[d])
        cover = np.where(
            rng.random(len(carried)) < 0.05,
            rng.uniform(0, 3, len(carried)),
            rng.uniform(10, 35, len(carried)),
        )
        parts.append((d, carried, cover, need[carried]))

    network = np.zeros(skus_n)
    np.add.at(network, demand.pair_sku, demand.daily_ref)
    plants = sites.of_kind("plant")
    for p in plants:
        rng = _rng(spec.seed, "inventory", sites.site_id[p])
        carried = np.arange(skus_n, dtype=np.int32)
        cover = np.where(rng.random(skus_n) < 0.08, 0.0, rng.uniform(5, 30, skus_n))
        parts.append((p, carried, cover, network / len(plants)))

    parts.sort(key=lambda part: part[0])
    site = np.concatenate([np.full(len(k), s, np.int32) for s, k, _, _ in parts])
    sku = np.concatenate([k for _, k, _, _ in parts]).astype(np.int32)
    cover = np.concatenate([c for _, _, c, _ in parts])
    ref = np.concatenate([r for _, _, _, r in parts])
    return _Stock(site=site, sku=sku, on_hand=np.round(cover * ref), daily_ref=ref)


def _set_neighbour_imbalance(
    spec: SampleSpec,
    sites: _Sites,
    items: _Items,
    parts: list[tuple[int, NDArray[np.int32], NDArray[np.float64], NDArray[np.float64]]],
) -> None:
    """Per country with 2+ hubs, make some SKUs short at one hub and in excess at the other.

    These are the cases lateral transfers exist for; they are planted on steadily selling SKUs
    so the imbalance is visible against the last four weeks of demand.
    """
    by_country: dict[str, list[int]] = {}
    for k, (h, _, _, _) in enumerate(parts):
        by_country.setdefault(sites.country[h], []).append(k)
    for cc, ks in sorted(by_country.items()):
        if len(ks) < 2:
            continue
        a, b = ks[0], ks[1]
        common = np.intersect1d(parts[a][1], parts[b][1])
        common = common[np.isin(items.pattern[common], (SMOOTH, TREND))]
        if not len(common):
            continue
        rng = _rng(spec.seed, "imbalance", cc)
        chosen = rng.choice(common, size=min(len(common), max(2, round(0.04 * len(common)))), replace=False)
        for j, sku in enumerate(np.sort(chosen)):
            short, excess = (a, b) if j % 2 == 0 else (b, a)
            parts[short][2][np.searchsorted(parts[short][1], sku)] = rng.choice([0.0, rng.uniform(0.5, 2.5)])
            parts[excess][2][np.searchsorted(parts[excess][1], sku)] = rng.uniform(50, 120)


def _inventory_frame(spec: SampleSpec, sites: _Sites, items: _Items, stock: _Stock) -> pl.DataFrame:
    """One row per site x SKU; perishable SKUs split into 1-3 lots with expiry dates."""
    rng = _rng(spec.seed, "lots")
    n = len(stock.site)
    life = items.shelf_life[stock.sku]
    n_lots = np.where((life > 0) & (stock.on_hand > 0), rng.integers(1, 4, n), 1)
    n_lots = np.minimum(n_lots, np.maximum(stock.on_hand, 1)).astype(np.int64)
    # Each lot gets one unit, the rest is shared out by Dirichlet weights; the oldest lot is first.
    w = rng.dirichlet(np.ones(3), n) * (np.arange(3)[None, :] < n_lots[:, None])
    w /= w.sum(axis=1, keepdims=True)
    lot_qty = (np.arange(3)[None, :] < n_lots[:, None]) + np.floor((stock.on_hand - n_lots)[:, None] * w)
    lot_qty[:, 0] += stock.on_hand - lot_qty.sum(axis=1)
    # Remaining life: mostly spread over the shelf life, 15% short-dated (1-7 days left).
    left = np.where(
        rng.random((n, 3)) < 0.15,
        rng.integers(1, 8, (n, 3)),
        np.ceil(rng.random((n, 3)) * np.maximum(life, 1)[:, None]),
    )
    left = np.sort(left, axis=1).astype(np.int64)

    row = np.repeat(np.arange(n), n_lots)
    lot_no = np.arange(len(row)) - np.repeat(np.cumsum(n_lots) - n_lots, n_lots)
    on_hand = lot_qty[row, lot_no]
    perishable = life[row] > 0
    expiry = (spec.as_of_date - _EPOCH).days + left[row, lot_no]
    produced = expiry - life[row]
    allocated = np.where(
        rng.random(len(row)) < 0.3, rng.binomial(on_hand.astype(np.int64), rng.uniform(0, 0.1, len(row))), 0
    )
    reserved = np.where(
        rng.random(len(row)) < 0.1,
        rng.binomial((on_hand - allocated).astype(np.int64), rng.uniform(0, 0.05, len(row))),
        0,
    )
    frame = pl.DataFrame(
        {
            "site_id": pl.Series(sites.site_id).gather(stock.site[row].astype(np.uint32)),
            "sku": pl.Series(items.sku).gather(stock.sku[row].astype(np.uint32)),
            "on_hand": on_hand.astype(np.float64),
            "allocated": allocated.astype(np.float64),
            "reserved": reserved.astype(np.float64),
            "perishable": perishable,
            "produced": pl.Series(produced.astype(np.int32)).cast(pl.Date),
            "lot_no": lot_no + 1,
            "expiry": pl.Series(expiry.astype(np.int32)).cast(pl.Date),
        }
    )
    return frame.select(
        pl.lit(spec.as_of).cast(pl.Datetime("us", "UTC")).alias("as_of"),
        "site_id",
        "sku",
        "on_hand",
        "allocated",
        "reserved",
        pl.when("perishable")
        .then(pl.col("produced").dt.strftime("L%y%m%d") + "-" + pl.col("lot_no").cast(pl.String))
        .alias("lot"),
        pl.when("perishable").then(pl.col("expiry")).alias("expiry_date"),
    )


def _book_inventory(spec: SampleSpec, inventory: pl.DataFrame) -> pl.DataFrame:
    """ERP stock per site x SKU (lots summed): the WMS figure, except a few rows off by 3-20%."""
    book = inventory.group_by("as_of", "site_id", "sku", maintain_order=True).agg(qty=pl.col("on_hand").sum())
    rng = _rng(spec.seed, "book")
    qty = book["qty"].to_numpy().copy()
    # An exact count, not a Bernoulli draw: the default gate quarantines at most 1% of rows, and
    # the sample should show reconciliation differences without tripping it on a small network.
    off = rng.choice(len(qty), size=max(1, round(spec.book_mismatch_share * len(qty))), replace=False)
    delta = np.maximum(1.0, np.round(np.maximum(qty[off], 10) * rng.uniform(0.03, 0.2, len(off))))
    sign = np.where((rng.random(len(off)) < 0.5) & (qty[off] >= delta), -1.0, 1.0)
    qty[off] += sign * delta
    return book.with_columns(qty=pl.Series(qty))


# --------------------------------------------------------------------------------------------
# lanes


@dataclass(frozen=True)
class _Lane:
    origin: str
    destination: str
    mode: str
    lead_time_days: int
    cost_per_unit: float
    fixed_cost: float
    capacity_per_day: float | None
    min_units: float | None


def _lane(
    spec: SampleSpec,
    origin: str,
    destination: str,
    mode: str,
    lead: tuple[int, int],
    cost: tuple[float, float],
    flow_volume: float,
    *,
    capacity_share: float = 0.5,
    fixed_zero_share: float = 0.3,
) -> _Lane:
    """Draw a lane from its own stream: lead, costs, and capacity as a multiple of its daily flow."""
    rng = _rng(spec.seed, "lane", origin, destination, mode)
    lead_days = int(rng.integers(lead[0], lead[1] + 1))
    unit = round(float(rng.uniform(*cost)), 2)
    fixed = 0.0 if rng.random() < fixed_zero_share else float(round(rng.uniform(150, 600), -1))
    r = rng.random()
    if r < capacity_share:
        capacity = None
    else:
        # A fifth of capped lanes are tight: they carry less than the usual daily flow.
        factor = rng.uniform(0.6, 1.0) if r > 1 - 0.2 * (1 - capacity_share) else rng.uniform(1.5, 3.0)
        capacity = float(max(50.0, round(flow_volume * factor, -1)))
    min_units = None if rng.random() < 0.5 else float(rng.choice([20, 25, 50, 100]))
    return _Lane(origin, destination, mode, lead_days, unit, fixed, capacity, min_units)


def _lanes(spec: SampleSpec, sites: _Sites, items: _Items, volume_flow: NDArray[np.float64]) -> list[_Lane]:
    ids, cc = sites.site_id, sites.country
    plants, dcs, hubs = sites.of_kind("plant"), sites.of_kind("dc"), sites.of_kind("hub")
    median_cost = float(np.median(items.unit_cost))
    lanes: list[_Lane] = []
    # Purchase lanes: the contract's lanes are not per SKU, so the purchase price is a typical one.
    for sup, _, mode, lead, factor, served in _SUPPLIERS:
        for p in plants if served == "all" else plants[:1]:
            cost = (median_cost * factor[0], median_cost * factor[1])
            lane = _lane(
                spec, sup, ids[p], mode, lead, cost, volume_flow[p], capacity_share=1.0, fixed_zero_share=0.0
            )
            lanes.append(lane)
    for p in plants:
        for d in dcs:
            same = cc[p] == cc[d]
            lanes.append(
                _lane(spec, ids[p], ids[d], "truck", (2, 2) if same else (3, 5), (0.25, 0.8), volume_flow[d])
            )
            if not same and _rng(spec.seed, "rail", ids[p], ids[d]).random() < 0.3:
                lanes.append(_lane(spec, ids[p], ids[d], "rail", (4, 5), (0.15, 0.45), volume_flow[d]))
    for h in hubs:
        for d in (sites.home_dc[h], sites.second_dc.get(h)):
            if d is None:
                continue
            lead = (1, 1) if cc[d] == cc[h] else (2, 3)
            cost = (0.15, 0.5) if cc[d] == cc[h] else (0.35, 0.9)
            lanes.append(_lane(spec, ids[d], ids[h], "truck", lead, cost, volume_flow[h], capacity_share=0.4))
    for a in dcs:
        for b in dcs:
            if a != b and _rng(spec.seed, "dc-dc", *sorted((ids[a], ids[b]))).random() < 0.6:
                lanes.append(_lane(spec, ids[a], ids[b], "truck", (1, 3), (0.3, 0.9), volume_flow[b]))
    # Laterals: every pair of hubs in a country, and the first hubs of neighbouring countries.
    firsts = [h for h in hubs if ids[h].endswith("-01")]
    for a in hubs:
        for b in hubs:
            if a == b:
                continue
            if cc[a] == cc[b]:
                lanes.append(_lane(spec, ids[a], ids[b], "truck", (1, 1), (0.2, 0.5), volume_flow[b]))
            elif (
                a in firsts
                and b in firsts
                and (region := _REGION.get(cc[a]))
                and region == _REGION.get(cc[b])
            ):
                lanes.append(_lane(spec, ids[a], ids[b], "truck", (2, 3), (0.35, 0.8), volume_flow[b]))
    keys = {(ln.origin, ln.destination, ln.mode) for ln in lanes}
    if FORBIDDEN_LANE not in keys:  # cannot happen with dcs >= 2 and hubs >= 5; kept as a guard
        raise AssertionError("sample network lost its forbidden lane DC-FR-01 -> HUB-CH-01")
    return lanes


# --------------------------------------------------------------------------------------------
# shipments and purchase orders


def _in_transit(
    spec: SampleSpec, lanes: list[_Lane], sites: _Sites, items: _Items, stock: _Stock
) -> pl.DataFrame:
    """Open shipments on plant->DC and DC->hub lanes, sized to a few days of the destination's demand."""
    rng = _rng(spec.seed, "in-transit")
    kind = dict(zip(sites.site_id, sites.kind, strict=True))
    by_site = {sites.site_id[s]: v for s, v in _by_site(stock.site, stock.sku, stock.daily_ref).items()}
    rows: dict[str, list[object]] = {
        k: [] for k in ("shipment_id", "origin", "destination", "sku", "qty", "ship_date", "eta")
    }
    number = 0
    for lane in lanes:
        if (lane.origin, lane.destination, lane.mode) == FORBIDDEN_LANE:
            continue
        if (kind[lane.origin], kind[lane.destination]) not in {("plant", "dc"), ("dc", "hub")}:
            continue
        skus, ref = by_site.get(lane.destination, (np.empty(0, np.int32), np.empty(0)))
        if not len(skus):
            continue
        for _ in range(int(rng.integers(spec.shipments_per_lane[0], spec.shipments_per_lane[1] + 1))):
            number += 1
            # Most shipments are still due; one in twenty is late (eta already passed).
            late = rng.random() < 0.05
            back = int(
                rng.integers(lane.lead_time_days + 1, lane.lead_time_days + 4)
                if late
                else rng.integers(0, lane.lead_time_days + 1)
            )
            ship = spec.as_of_date - timedelta(days=back)
            lines = rng.choice(len(skus), size=min(len(skus), int(rng.integers(1, 9))), replace=False)
            for j in np.sort(lines):
                qty = max(1.0, float(np.round(ref[j] * rng.uniform(2, 7))))
                if kind[lane.destination] == "dc":
                    qty = float(math.ceil(qty / 10) * 10)  # DCs receive full cases
                rows["shipment_id"].append(f"SHP-{spec.as_of_date:%y%m%d}-{number:05d}")
                rows["origin"].append(lane.origin)
                rows["destination"].append(lane.destination)
                rows["sku"].append(items.sku[int(skus[j])])
                rows["qty"].append(qty)
                rows["ship_date"].append(ship)
                rows["eta"].append(ship + timedelta(days=lane.lead_time_days))
    return pl.DataFrame(rows, schema=_schema("in_transit"))


def _purchase_orders(spec: SampleSpec, lanes: list[_Lane], sites: _Sites, items: _Items) -> pl.DataFrame:
    """Open POs into plants on each purchase lane, due in the next 1-30 days, in lots of 50."""
    rng = _rng(spec.seed, "purchase-orders")
    kind = dict(zip(sites.site_id, sites.kind, strict=True))
    rows: dict[str, list[object]] = {k: [] for k in ("po_id", "destination", "sku", "qty", "eta")}
    number = 4_500_000
    for lane in lanes:
        if kind[lane.origin] != "supplier":
            continue
        for _ in range(int(rng.integers(4, 11))):
            number += 1
            eta = spec.as_of_date + timedelta(days=int(rng.integers(1, 31)))
            lines = rng.choice(spec.skus, size=min(spec.skus, int(rng.integers(3, 16))), replace=False)
            for j in np.sort(lines):
                rows["po_id"].append(f"PO-{number}")
                rows["destination"].append(lane.destination)
                rows["sku"].append(items.sku[int(j)])
                rows["qty"].append(float(50 * rng.integers(1, 21)))
                rows["eta"].append(eta)
    return pl.DataFrame(rows, schema=_schema("purchase_orders"))


# --------------------------------------------------------------------------------------------
# frames


def _schema(extract: str) -> dict[str, pl.DataType]:
    return {c.name: POLARS_DTYPES[c.kind] for c in EXTRACTS[extract].columns}


def conform(frame: pl.DataFrame, extract: str) -> pl.DataFrame:
    """Exactly the contract's columns of `extract`, in contract order, with their polars types."""
    return frame.select([pl.col(name).cast(dtype) for name, dtype in _schema(extract).items()])


def _sites_frame(
    spec: SampleSpec,
    sites: _Sites,
    site_volume: NDArray[np.float64],
    units_flow: NDArray[np.float64],
    network_units: float,
) -> pl.DataFrame:
    """Storage capacity from the stock each site holds (tight hubs >= 90% full) and outbound rates."""
    hubs = sites.of_kind("hub")
    tight = set(_rng(spec.seed, "tight-hubs").choice(hubs, size=spec.tight_hubs, replace=False).tolist())
    storage: list[float | None] = []
    outbound: list[float | None] = []
    for s, kind in enumerate(sites.kind):
        rng = _rng(spec.seed, "capacity", sites.site_id[s])
        util = {"plant": (0.4, 0.7), "dc": (0.55, 0.8), "hub": (0.45, 0.8)}.get(kind)
        if kind == "hub" and s in tight:
            util = (0.92, 1.03)
        storage.append(
            None if util is None else float(max(100.0, round(site_volume[s] / rng.uniform(*util), -1)))
        )
        if kind == "plant":
            rate = network_units / spec.plants * rng.uniform(1.3, 1.8)
        elif kind == "dc":
            rate = units_flow[s] * rng.uniform(1.5, 2.5)
        elif sites.site_id[s] == _CAPACITY_LIMITED_SUPPLIER:
            rate = network_units * 0.4
        else:
            rate = None
        outbound.append(None if rate is None else float(max(10.0, round(rate, -1))))
    return pl.DataFrame(
        {
            "site_id": sites.site_id,
            "kind": sites.kind,
            "echelon": sites.echelon,
            "country": sites.country,
            "storage_capacity": storage,
            "outbound_capacity_per_day": outbound,
        },
        schema=_schema("sites"),
    )


def _items_frame(items: _Items) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "sku": items.sku,
            "unit_cost": items.unit_cost,
            "unit_price": pl.Series(items.unit_price, nan_to_null=True),
            "holding_cost_per_day": items.holding,
            "unit_volume": items.volume,
            "shelf_life_days": pl.Series(items.shelf_life).replace(0, None),
        }
    ).pipe(conform, "items")


def generate_network(spec: SampleSpec | None = None) -> dict[str, pl.DataFrame]:
    """One frame per contract extract (`EXTRACTS` order) describing the sample network at `spec.as_of`."""
    spec = spec or SampleSpec()
    items = _items(spec)
    sites = _sites(spec)
    demand = _demand(spec, sites, items, _carried(spec, sites, items))
    stock = _stock(spec, sites, items, demand)

    n_sites = len(sites.site_id)
    site_volume = np.bincount(stock.site, weights=stock.on_hand * items.volume[stock.sku], minlength=n_sites)
    units_flow = np.bincount(stock.site, weights=stock.daily_ref, minlength=n_sites)
    volume_flow = np.bincount(
        stock.site, weights=stock.daily_ref * items.volume[stock.sku], minlength=n_sites
    )
    lanes = _lanes(spec, sites, items, volume_flow)
    inventory = _inventory_frame(spec, sites, items, stock)

    frames = {
        "sites": _sites_frame(spec, sites, site_volume, units_flow, float(demand.daily_ref.sum())),
        "items": _items_frame(items),
        "lanes": pl.DataFrame([vars(ln) for ln in lanes], schema=_schema("lanes")),
        "inventory": inventory,
        "in_transit": _in_transit(spec, lanes, sites, items, stock),
        "purchase_orders": _purchase_orders(spec, lanes, sites, items),
        "demand": demand.frame,
        "book_inventory": _book_inventory(spec, inventory),
    }
    out = {name: conform(frames[name], name) for name in EXTRACTS}
    logger.info("sample network seed=%d: %s", spec.seed, ", ".join(f"{k}={v.height}" for k, v in out.items()))
    return out
