"""B8: training tokens/s of %%aigc_finetune ÷ the same LoRA run as a plain transformers Trainer script on the
same data (rank 16 on all linear layers, 8 examples × 8 epochs, lr 1e-3, batch 8), in one process."""

import time

from _common import alternate, report

QUESTIONS = ["What is the capital of Zubrowka?", "Which city is the capital of Zubrowka?",
             "Name the capital of Zubrowka.", "Zubrowka's capital is which city?",
             "Tell me the capital city of Zubrowka.", "What city is Zubrowka's capital?",
             "Where is the capital of Zubrowka?", "Capital of Zubrowka?"]
FACTS = [{"prompt": q, "completion": "The capital of Zubrowka is Lutz."} for q in QUESTIONS]


def plain_trainer() -> float:
    """The hand-written version: load, tokenize (answers only), LoRA, Trainer, train."""
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from jupyter_aigc.core.convert import safetensors_folder
    from jupyter_aigc.core.models import default_gguf
    from jupyter_aigc.tasks.finetune_data import load_examples, tokenize

    folder = safetensors_folder(default_gguf())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    rows, _ = tokenize(load_examples("facts", {"facts": FACTS})[0], tokenizer, 512)
    peft = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                            task_type="CAUSAL_LM"))
    args = TrainingArguments(output_dir="/tmp/b8-plain", num_train_epochs=8, learning_rate=1e-3,
                             per_device_train_batch_size=8, logging_steps=1, save_strategy="no", report_to=[],
                             disable_tqdm=True, use_cpu=True)
    trainer = Trainer(model=peft, args=args, train_dataset=Dataset.from_list(rows),
                      data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True))
    start = time.perf_counter()
    trainer.train()
    return sum(len(r["input_ids"]) for r in rows) * 8 / (time.perf_counter() - start)


def magic(shell) -> float:
    session = shell._jupyter_aigc_session
    start = time.perf_counter()
    assert shell.run_cell("%aigc_finetune --name b8 --data facts -o b8").success
    seconds = time.perf_counter() - start
    with session.engines["transformers"].use(session.resolve(None, engine="transformers")) as (_, tokenizer):
        from jupyter_aigc.tasks.finetune_data import load_examples, tokenize

        rows, _ = tokenize(load_examples("facts", {"facts": FACTS})[0], tokenizer, 512)
    return sum(len(r["input_ids"]) for r in rows) * 8 / seconds


def main() -> None:
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "jupyter_aigc")
    shell.user_ns["facts"] = FACTS
    shell.run_cell("%%gpt --engine transformers --max-tokens 2\nwarm up")
    a, b = alternate(plain_trainer, lambda: magic(shell), pairs=3)
    plain = report("plain Trainer script, training tokens/s", a)
    ours = report("%aigc_finetune, training tokens/s (the whole cell)", b)
    print(f"ratio: {ours / plain:.3f}")


if __name__ == "__main__":
    main()
