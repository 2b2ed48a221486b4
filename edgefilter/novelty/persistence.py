"""Saving and restoring a NoveltyFilter's kept frames, the thumbnails of its latest keeps and controller state
(``<dir>/novelty.npz``)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..state import load_state, save_state
from .budget import Budget
from .index import RollingIndex
from .view import VIEW_SIZE

if TYPE_CHECKING:
    from .filter import NoveltyFilter

log = logging.getLogger("edgefilter.novelty")

STATE_NAME = "novelty"
STATE_VERSION = 1


def save(filt: "NoveltyFilter", directory: str | Path, model_id: str) -> Path:
    payload: dict[str, Any] = {}
    scopes = list(filt._scopes)
    for n, name in enumerate(scopes):
        for key, arr in filt._scopes[name].index.state().items():
            payload[f"scope{n}.{key}"] = arr
    # the thumbnails of each source's latest keeps: a scene that comes back after a restart under another
    # exposure is still the one kept (known.py), not only what the embedding says; and of the frames it saw
    # last: the scene it stopped on is no new one after the restart
    known_sources = []
    for s, st in filt._src.items():
        kept, seen = st.known.kept_views(), st.known.seen_views()
        if kept is None and seen is None:
            continue
        n = len(known_sources)
        if kept is not None:
            payload[f"known{n}.views"], payload[f"known{n}.keys"] = kept
        if seen is not None:
            payload[f"known{n}.seen"] = seen
        known_sources.append(s)
    # where a moving camera's keeps lie on its ground (ground.py): without them a restarted PTZ tour or flight
    # kept all of its ground again
    ground_sources = []
    for s, st in filt._src.items():
        ground = st.ground.state()
        if ground:
            n = len(ground_sources)
            for key, arr in ground.items():
                payload[f"ground{n}.{key}"] = arr
            ground_sources.append(s)
    payload["filter"] = {
        "version": STATE_VERSION, "dim": filt.dim, "scope": filt.cfg.scope, "scopes": scopes,
        "region_count": filt.region_count, "region_dim": filt.region_dim, "known_sources": known_sources,
        "ground_sources": ground_sources,
        "sources": {s: {"threshold": st.threshold, "last_keep_ts": st.last_keep_ts, "first_ts": st.first_ts,
                        "budget": [st.budget.count, st.budget.weight, st.budget.last_ts],
                        "budget_on": filt.cfg_of(s).budget_per_minute is not None}
                    for s, st in filt._src.items()},
    }
    return save_state(directory, STATE_NAME, payload, model_id)


def load(filt: "NoveltyFilter", directory: str | Path, model_id: str) -> bool:
    from .filter import _Scope

    payload = load_state(directory, STATE_NAME, model_id)
    if payload is None:
        return False
    meta = payload.get("filter")
    if not isinstance(meta, dict) or meta.get("version") != STATE_VERSION:
        log.warning("novelty state in %s has an unknown layout; starting empty", directory)
        return False
    if meta["dim"] != filt.dim or meta["scope"] != filt.cfg.scope:
        log.warning("novelty state in %s was made with dim %s scope %s, now dim %s scope %s; starting empty",
                    directory, meta["dim"], meta["scope"], filt.dim, filt.cfg.scope)
        return False
    window = filt.cfg.window
    for n, name in enumerate(meta["scopes"]):
        if name not in filt._scopes:
            continue  # a source that is no longer configured
        # (files from before region cells rode along as payload also hold scope{n}.region{r}.*: ignored)
        part = {k.split(".", 1)[1]: v for k, v in payload.items() if k.startswith(f"scope{n}.")
                and not k.startswith(f"scope{n}.region")}
        filt._scopes[name] = _Scope(RollingIndex.from_state(filt.dim, window, part))
    filt._epoch += 1
    for n, s in enumerate(meta.get("known_sources", [])):
        st = filt._src.get(s)
        if st is None:
            continue
        views = _thumbnails(payload.get(f"known{n}.views"), directory, s)
        if views is not None:
            keys = payload.get(f"known{n}.keys")  # (files from before keys rode along have none)
            st.known.restore(views, keys if isinstance(keys, np.ndarray) and keys.shape == (len(views),) else None)
        seen = _thumbnails(payload.get(f"known{n}.seen"), directory, s)  # (none in files from before finding 78)
        if seen is not None:
            st.known.restore_seen(seen)
    for n, s in enumerate(meta.get("ground_sources", [])):  # (none in files from before finding 82)
        st = filt._src.get(s)
        spots, viewed = payload.get(f"ground{n}.spots"), payload.get(f"ground{n}.viewed")
        views = _thumbnails(payload.get(f"ground{n}.views"), directory, s)
        if st is None or views is None or views.ndim != 3:
            continue
        if (not isinstance(spots, np.ndarray) or spots.ndim != 2 or spots.shape[1] != 3
                or spots.dtype.kind != "f" or not np.isfinite(spots).all()
                or not isinstance(viewed, np.ndarray) or viewed.shape != (len(spots),)
                or int(viewed.astype(bool).sum()) != len(views)):
            log.warning("novelty state in %s: the kept places of %r do not match their %d thumbnails; not restored",
                        directory, s, len(views))
            continue
        st.ground.restore(spots, viewed.astype(bool), views)
    for s, saved in meta["sources"].items():
        st = filt._src.get(s)
        if st is None:
            continue
        st.last_keep_ts = saved["last_keep_ts"]
        st.first_ts = saved["first_ts"]
        cfg = filt.cfg_of(s)
        if cfg.budget_per_minute is not None and saved.get("budget_on"):
            st.threshold = min(max(float(saved["threshold"]), cfg.threshold_min), cfg.threshold_max)
            count, weight, last_ts = saved["budget"]
            st.budget = Budget(float(count), float(weight), last_ts)
    return True


def _thumbnails(views: Any, directory: str | Path, source: str) -> np.ndarray | None:
    """Saved thumbnails as they can be compared: (K, 3, h, w) with colour; (K, h, w) grey, as saved before colour
    (compared by brightness alone). None, with a warning when there were some, otherwise."""
    if not isinstance(views, np.ndarray):
        return None
    if (views.dtype != np.uint8 or views.shape[-2:] != VIEW_SIZE[::-1] or views.ndim not in (3, 4)
            or views.shape[1:-2] not in ((), (3,))):
        log.warning("novelty state in %s: remembered thumbnails of %r have shape %s, not (K, [3, ]%d, %d); "
                    "not restored", directory, source, views.shape, VIEW_SIZE[1], VIEW_SIZE[0])
        return None
    return views
