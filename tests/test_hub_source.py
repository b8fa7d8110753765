"""``data=sentiment data.source=hf:<name>`` that the Hub does not have, or that cannot be fetched
with no copy cached, is refused in one line naming data.source, after one request (not ~40 s of
retries), and writes nothing into the data cache (no folder, no .lock-* file); a cached copy is
read offline, without a request (issue 42, item 8). The Hub is faked: no test needs a network."""

from __future__ import annotations

import time

import pytest

from rnnlab.data import sentiment
from rnnlab.data.sentiment import SentimentDataModule
from rnnlab.data.sources import SourceUnavailable


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("answer,said", [
    ("not found", "data.source=hf:nonexistent/zzz: the Hugging Face Hub has no dataset "
                  "'nonexistent/zzz'"),
    ("unreachable: ConnectError: [Errno -2] Name or service not known",
     "data.source=hf:nonexistent/zzz: the Hugging Face Hub cannot be reached (offline? "
     "ConnectError: [Errno -2] Name or service not known) and no copy of 'nonexistent/zzz' is "
     "cached"),
])
def test_a_hub_dataset_that_cannot_be_had_is_one_line_and_writes_nothing(tmp_path, monkeypatch,
                                                                         answer, said):
    asked = []
    monkeypatch.setattr(sentiment, "hub_lookup", lambda name: asked.append(name) or answer)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import datasets

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("no retries"))
    data = tmp_path / "data"
    data.mkdir()
    module = SentimentDataModule(source="hf:nonexistent/zzz", data_dir=str(data))
    with pytest.raises(SourceUnavailable) as info:
        module.setup()
    message = str(info.value)
    assert message.startswith(said) and "\n" not in message, message
    assert "data.source=rotten_tomatoes" in message
    assert asked == ["nonexistent/zzz"]
    assert _files(data) == []  # no sentiment/, no .lock-* files


def test_without_network_the_one_request_fails_at_once(monkeypatch):
    """The real lookup, offline (HF_HUB_OFFLINE): one answer, no retries, no waiting."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    started = time.monotonic()
    answer = sentiment.hub_lookup("nonexistent/zzz")
    assert answer.startswith("unreachable: "), answer
    assert time.monotonic() - started < 5


def test_unreachable_with_a_cached_copy_reads_it_offline(tmp_path, monkeypatch):
    import datasets
    import huggingface_hub.constants

    monkeypatch.setattr(sentiment, "hub_lookup", lambda name: "unreachable: ConnectError: x")
    data = tmp_path / "data"
    (data / "huggingface" / "some___set").mkdir(parents=True)  # datasets' cache of it
    offline = []

    def fake_load_dataset(name, config=None, cache_dir=None):
        offline.append((datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE))
        table = datasets.Dataset.from_dict({"text": [f"w{i} good" for i in range(40)],
                                            "label": [i % 2 for i in range(40)]})
        return datasets.DatasetDict({"train": table})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    before = datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE
    module = SentimentDataModule(source="hf:some/set", data_dir=str(data), min_freq=1)
    module.setup()
    assert offline == [(True, True)]  # read from the cache, no request
    assert (datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE) == before
    assert len(module.splits["train"]) > 0
