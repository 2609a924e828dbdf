import pytest

from mm_pipelines.stores.objects import LocalObjectStore, open_object_store

pytestmark = pytest.mark.unit


def test_local_store_round_trips_and_lists_by_prefix(tmp_path):
    store = open_object_store(f"file://{tmp_path}/objects")
    assert isinstance(store, LocalObjectStore)
    store.put_bytes("raw/events/date=2026-10-01/0-100.parquet", b"a")
    store.put_bytes("finance/payouts/b1/manifest.json", b"b")
    assert store.list_keys("raw/") == ["raw/events/date=2026-10-01/0-100.parquet"]
    assert store.get_bytes("finance/payouts/b1/manifest.json") == b"b"
    store.put_bytes("finance/payouts/b1/manifest.json", b"c")  # overwrite is atomic
    assert store.get_bytes("finance/payouts/b1/manifest.json") == b"c"
    assert store.presigned_url("finance/payouts/b1/manifest.json").startswith("file://")
    store.delete("finance/payouts/b1/manifest.json")
    assert not store.exists("finance/payouts/b1/manifest.json")
    with pytest.raises(KeyError, match="No object"):
        store.get_bytes("finance/payouts/b1/manifest.json")


@pytest.mark.parametrize("key", ["", "/etc/passwd", "a/../../b"])
def test_keys_cannot_escape_the_store(tmp_path, key):
    with pytest.raises(ValueError, match="relative path"):
        LocalObjectStore(f"file://{tmp_path}").put_bytes(key, b"x")
