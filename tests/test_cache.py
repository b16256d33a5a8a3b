import gc
import threading
import time
import weakref

import pytest
import torch

from jupyter_aigc.core.cache import Loaded, ModelCache, module_bytes, pick_device, pick_dtype


def linear(n: int) -> torch.nn.Module:
    return torch.nn.Linear(n, n, bias=False)  # n*n*4 bytes


def loaded(module, **kwargs) -> Loaded:
    """What an engine reports for a torch module: its bytes, device and dtype."""
    return Loaded(module, module_bytes(module) if module is not None else 0, "cpu", "float32", "test", **kwargs)


def loader_for(module, calls=None):
    def load():
        if calls is not None:
            calls.append(1)
        return loaded(module)

    return load


def test_second_get_is_a_hit_not_a_reload():
    cache = ModelCache(budget_bytes=10**9)
    calls = []
    first = cache.get("a", loader_for(linear(8), calls))
    second = cache.get("a", loader_for(linear(8), calls))
    assert first is second and len(calls) == 1
    assert cache.stats()[0]["hits"] == 1


def test_stats_record_bytes_device_and_load_time():
    cache = ModelCache(budget_bytes=10**9)
    cache.get("a", loader_for(linear(16)), name="Alpha")
    (stats,) = cache.stats()
    assert stats["name"] == "Alpha" and stats["bytes"] == 16 * 16 * 4
    assert stats["device"] == "cpu" and stats["dtype"] == "float32" and stats["load_time"] >= 0


def test_lru_eviction_under_budget_frees_the_model():
    cache = ModelCache(budget_bytes=2 * 64 * 64 * 4 + 100)
    a = linear(64)
    ref = weakref.ref(a)
    cache.get("a", loader_for(a))
    del a
    cache.get("b", loader_for(linear(64)))
    cache.get("a", loader_for(None))  # touch a: b becomes least recently used
    cache.get("c", loader_for(linear(64)))
    assert "b" not in cache and "a" in cache and "c" in cache
    cache.get("d", loader_for(linear(64)))
    assert "a" not in cache
    gc.collect()
    assert ref() is None, "an evicted model must not stay in memory"
    assert cache.total_bytes() <= cache.budget_bytes


def test_a_model_larger_than_the_budget_still_loads_alone():
    cache = ModelCache(budget_bytes=10)
    cache.get("a", loader_for(linear(4)))
    cache.get("b", loader_for(linear(4)))
    assert len(cache) == 1 and "b" in cache


def test_concurrent_requests_for_one_model_load_it_once():
    cache = ModelCache(budget_bytes=10**9)
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.3)
        return loaded(linear(8))

    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("m", slow))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len({id(r) for r in results}) == 1


def test_a_failed_load_leaves_the_cache_consistent():
    cache = ModelCache(budget_bytes=10**9)

    def broken():
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        cache.get("x", broken)
    assert "x" not in cache and cache.stats() == []
    assert cache.get("x", loader_for(linear(2))) is not None


def test_evict_by_name_and_clear():
    cache = ModelCache(budget_bytes=10**9)
    cache.get("k1", loader_for(linear(2)), name="One")
    cache.get("k2", loader_for(linear(2)), name="Two")
    assert cache.evict("One") and not cache.evict("One")
    cache.clear()
    assert len(cache) == 0


def test_pipeline_like_objects_count_every_module():
    class Pipe:
        components = {"unet": linear(4), "vae": linear(2), "scheduler": object()}

    assert module_bytes(Pipe()) == (16 + 4) * 4


def test_device_and_dtype_choice_on_this_machine():
    mps = getattr(torch.backends, "mps", None)
    expected = "cuda" if torch.cuda.is_available() else "mps" if mps is not None and mps.is_available() else "cpu"
    assert pick_device() == expected
    assert pick_device("cpu") == "cpu"
    assert pick_dtype("cpu") == torch.float32
    assert pick_dtype("cpu", "bfloat16") == torch.bfloat16


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_eviction_frees_cuda_memory():
    cache = ModelCache(budget_bytes=10**12)
    cache.get("big", lambda: Loaded(torch.nn.Linear(4096, 4096).cuda(), 4096 * 4097 * 4, "cuda", "float32"))
    held = torch.cuda.memory_allocated()
    assert held >= 4096 * 4096 * 4
    cache.evict("big")
    assert torch.cuda.memory_allocated() <= held - 4096 * 4096 * 4
    assert pick_dtype("cuda") in (torch.bfloat16, torch.float16)


def test_the_size_is_what_the_engine_reports_and_close_frees_it():
    closed = []
    cache = ModelCache(budget_bytes=1000)
    cache.get("server", lambda: Loaded(object(), 800, "cpu", "F16", "llama.cpp", close=lambda: closed.append(1)))
    assert cache.stats()[0]["bytes"] == 800 and cache.stats()[0]["engine"] == "llama.cpp"
    cache.get("other", lambda: Loaded(object(), 500, "cpu", "F16", "llama.cpp"))
    assert "server" not in cache and closed == [1], "over budget: the first model is closed"


def test_a_model_in_use_is_freed_when_its_user_is_done():
    closed = []
    cache = ModelCache(budget_bytes=10**9)
    load = lambda: Loaded(object(), 10, "cpu", "x", close=lambda: closed.append(1))  # noqa: E731
    with cache.use("m", load) as value:
        assert value is not None
        cache.evict("m")
        assert "m" not in cache and closed == [], "still in use: not closed under its user"
    assert closed == [1]


def test_exclusive_use_waits_for_shared_users_and_blocks_new_ones():
    cache = ModelCache(budget_bytes=10**9)
    load = lambda: Loaded(object(), 1, "cpu", "x")  # noqa: E731
    events = []
    release = threading.Event()

    def reader():
        with cache.use("m", load):
            events.append("read")
            release.wait(5)
        events.append("read done")

    def writer():
        with cache.use("m", load, exclusive=True):
            events.append("write")

    first = threading.Thread(target=reader)
    first.start()
    time.sleep(0.2)
    second = threading.Thread(target=writer)
    second.start()
    time.sleep(0.3)
    assert events == ["read"], "the exclusive user waits for the reader"
    release.set()
    first.join(5)
    second.join(5)
    assert events == ["read", "read done", "write"]


def test_evicting_a_base_drops_its_adapters():
    cache = ModelCache(budget_bytes=10**9)
    cache.get("base", lambda: Loaded(object(), 100, "cpu", "x"))
    cache.get("adapter", lambda: Loaded(object(), 1, "cpu", "x", base="base"))
    assert cache.stats()[1]["base"] == "base"
    cache.evict("base")
    assert len(cache) == 0
