"""B13: items per second of %%aigc_eval --task choice on the default model ÷ lm-evaluation-harness's
``simple_evaluate`` (hf backend, CPU) on the same 48 items and the same transformers copy of the model, both
with the model already loaded (lm-eval gets an ``HFLM`` built once; ours is warm in the kernel's cache).

lm-eval runs at its default batch size (1) and at 16; the ratio is against the faster of the two.
"""

import json
import os
import tempfile
import time
from pathlib import Path

from _common import alternate, report, start_kernel

from test_choice import PARITY_TEMPLATE, lm_eval_task, parity_items  # tests/ is on the path (_common)


def main() -> None:
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from jupyter_aigc.core.convert import safetensors_folder
    from jupyter_aigc.core.models import default_gguf

    items = parity_items()
    folder = Path(tempfile.mkdtemp(prefix="b13-"))
    task = lm_eval_task(folder, items)
    manager = TaskManager(include_path=str(folder))
    model_folder = safetensors_folder(default_gguf())
    models = {size: HFLM(pretrained=str(model_folder), device="cpu", batch_size=size) for size in (1, 16)}

    kernel = start_kernel()
    kernel.run(f"import json\nitems = json.loads({json.dumps(json.dumps(items))})")
    cell = f"%%aigc_eval --task choice --data items --choices choices --answer answer --fresh -o df\n{PARITY_TEMPLATE}"
    warm = kernel.run(cell)
    assert warm["status"] == "ok", warm

    def ours() -> float:
        start = time.perf_counter()
        out = kernel.run(cell)
        assert out["status"] == "ok", out
        return len(items) / (time.perf_counter() - start)

    def theirs(size: int):
        def measure() -> float:
            start = time.perf_counter()
            results = lm_eval.simple_evaluate(model=models[size], tasks=[task], task_manager=manager,
                                              num_fewshot=0, log_samples=True, verbosity="ERROR")
            assert results["results"][task]["acc,none"] is not None
            return len(items) / (time.perf_counter() - start)
        return measure

    theirs(1)()  # warm up: the dataset's first load
    a1, b = alternate(theirs(1), ours, pairs=3)
    a16, _ = alternate(theirs(16), lambda: 0.0, pairs=3)
    one = report("lm-eval simple_evaluate (hf, batch 1), items/s", a1)
    sixteen = report("lm-eval simple_evaluate (hf, batch 16), items/s", a16)
    mine = report("%%aigc_eval --task choice, items/s", b)
    kernel.close()
    print(f"ratio: {mine / max(one, sixteen):.3f}")


if __name__ == "__main__":
    main()
