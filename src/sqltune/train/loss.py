"""The training loss on CPU: the LM head on labelled positions only, and shared-prefix batches.

:func:`sqltune.train.head.labelled_head_loss` is the loss of a padded batch; :mod:`sqltune.train.prefix` computes the
same loss with each batch's common prompt prefix run once. ``trainer_class`` is TRL's
SFTTrainer with either in ``compute_loss`` (and, for shared prefixes, a sampler that batches
examples of one database together).
"""

from __future__ import annotations

from typing import Any

from sqltune.errors import ModelError
from sqltune.train.head import labelled_head_loss
from sqltune.train.prefix import PrefixGroupedSampler, shared_prefix_loss


def trainer_class(
    labelled_head: bool, shared_prefix_keys: list[str] | None = None, lengths: list[int] | None = None
) -> Any:
    """TRL's SFTTrainer, with :func:`labelled_head_loss` where TRL's fused head scores every position.

    TRL's fused head scores only labelled positions where Triton runs (CUDA); elsewhere it
    projects every position in fp32, which is 40% of a CPU training step for text-to-SQL data.
    """
    import torch
    from transformers.modeling_outputs import CausalLMOutput
    from trl import SFTTrainer

    if not labelled_head and shared_prefix_keys is None:
        return SFTTrainer

    class LabelledHeadSFTTrainer(SFTTrainer):
        # TRL's private token and metric counters, written below so that TRL's logs stay whole.
        # Tested with TRL 1.16 (pyproject bounds it); a TRL that moves them fails here, clearly.
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, **kwargs)
            missing = [f for f in ("_metrics", "_total_train_tokens") if not hasattr(self, f)]
            if missing:
                import trl

                raise ModelError(
                    f"TRL {trl.__version__} has no SFTTrainer.{', .'.join(missing)}, which sqltune's CPU loss "
                    "path updates; install the TRL version pyproject.toml names, or set lm_head_on_labels_only: false"
                )

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # type: ignore[no-untyped-def]
            mode = "train" if self.model.training else "eval"
            if "prefix_ids" in inputs:
                loss, stats = shared_prefix_loss(model, inputs, num_items_in_batch)
            else:
                loss, stats = labelled_head_loss(model, inputs, num_items_in_batch)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes
            gather = self.accelerator.gather_for_metrics
            n = gather(stats["label_tokens"]).sum()
            if n > 0:
                self._metrics[mode]["entropy"].append((gather(stats["entropy_sum"]).sum() / n).item())
                self._metrics[mode]["mean_token_accuracy"].append((gather(stats["correct"]).sum() / n).item())
            if mode == "train":
                if "num_tokens" in inputs:
                    seen = inputs["num_tokens"]
                elif "attention_mask" in inputs:
                    seen = inputs["attention_mask"].sum()
                else:
                    seen = torch.tensor(inputs["input_ids"].numel(), device=inputs["input_ids"].device)
                self._total_train_tokens += gather(seen).sum().item()
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            return (loss, CausalLMOutput(loss=loss)) if return_outputs else loss

        def _get_train_sampler(self, train_dataset=None):  # type: ignore[no-untyped-def]
            if shared_prefix_keys is None:
                return super()._get_train_sampler(train_dataset)
            return PrefixGroupedSampler(
                shared_prefix_keys, self.args.per_device_train_batch_size, self.args.seed, lengths
            )

    return LabelledHeadSFTTrainer


__all__ = ["labelled_head_loss", "trainer_class"]
