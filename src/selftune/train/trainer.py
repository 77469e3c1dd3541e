"""One training run as an object with a visible lifecycle: ``setup`` -> ``train`` -> ``finish``.

The loop is our own rather than ``transformers.Trainer``/TRL's, because the speed on a CPU comes
from things those trainers don't do together: padding-free packing with shared prefixes, the LM head
only at trained positions, token-budget steps, and a schedule planned to end within a time budget.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
import weakref
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from selftune.errors import SelftuneError
from selftune.hardware import autocast_dtype, training_device
from selftune.models.resolve import resolve_model
from selftune.models.tokenizer import context_length, load_tokenizer
from selftune.store.atomic import atomic_write
from selftune.threads import ComputeShare
from selftune.train import checkpoint as ckpt
from selftune.train.batching import epoch_steps, micro_batches
from selftune.train.config import TrainConfig
from selftune.train.dataset import TrainingData, load_training_file
from selftune.train.distributed import init_distributed
from selftune.train.events import (
    CheckpointEvent,
    EarlyStopEvent,
    EpochEvent,
    EvalEvent,
    EventLog,
    PlanEvent,
    ResultRow,
    RunState,
    RunStatus,
    StartEvent,
    StepEvent,
    StoppedEvent,
    TrainerState,
    WarningEvent,
)
from selftune.train.hyperparams import Hyperparameters, learning_rate_at, resolve
from selftune.train.methods import Method, method_spec
from selftune.train.metrics import write_results_csv
from selftune.train.model_setup import (
    LoraSettings,
    causal_lm,
    load_adapter_for_training,
    load_for_training,
    load_full_for_training,
    trainable_parameters,
)
from selftune.train.objectives import dpo_loss, sequence_logps, token_loss
from selftune.train.packing import pack
from selftune.train.progress import Progress
from selftune.train.time_budget import BudgetPlanner

log = logging.getLogger(__name__)

MAX_ROW_TOKENS = 2048  # data tokens per forward pass; a step with more is split and its gradients summed
MAX_GRAD_NORM = 1.0


class ResumeMismatch(SelftuneError):
    """--resume found a checkpoint made with other data or settings."""


@dataclass
class TrainResult:
    out: Path
    status: RunStatus
    state: RunState
    hyperparameters: Hyperparameters
    train: TrainingData
    valid: TrainingData | None


class Trainer:
    def __init__(self, config: TrainConfig, should_stop: Callable[[], bool] | None = None):
        self.config = config
        self.should_stop = should_stop or (lambda: False)
        self.out = Path(config.out)
        self.events = EventLog(config.events_file)

    # ---- setup -------------------------------------------------------------------------------
    def setup(self) -> None:
        config = self.config
        self._setup_started = time.perf_counter()
        self.device = training_device()
        self.dist = init_distributed(self.device)
        # this process's share of the cores, re-checked after every step (when it polls should_stop)
        self.cpu_share = ComputeShare("train", processes=self.dist.local_world_size)
        self.threads, self.should_stop = self.cpu_share.apply(), self.cpu_share.refreshing(self.should_stop)
        weakref.finalize(self, self.cpu_share.close)
        if self.dist.enabled and self.dist.is_main:
            log.info("data parallel: world size %d, %d thread(s) per process", self.dist.world_size, self.threads)
        if not self.dist.is_main:
            self.events = EventLog(None)  # one process reports
        self.dtype = autocast_dtype(self.device, config.precision)
        self.model_folder = resolve_model(config.model)
        self.tokenizer = load_tokenizer(config.model)
        self.max_length = min(config.max_length or context_length(config.model), context_length(config.model))
        purpose = method_spec(config.method).file_format
        self.train_data = load_training_file(config.train_file, self.tokenizer, purpose, self.max_length)
        self.valid_data = (load_training_file(config.valid_file, self.tokenizer, purpose, self.max_length)
                           if config.valid_file else None)
        for data in filter(None, (self.train_data, self.valid_data)):
            if data.truncated:
                self._warn(f"{data.path}: {data.truncated:,} example(s) are longer than {self.max_length:,} "
                           "tokens and were truncated")
        self.hp = resolve(config, len(self.train_data))
        self.lengths = self.train_data.lengths()
        mean_length = sum(self.lengths) / len(self.lengths)
        self.tokens_per_step = max(1, round(self.hp.batch_size * mean_length))
        # every epoch's seeded order, fixed up front: the schedule's length and resumption both rely on it
        self.epoch_plans = [epoch_steps(self.lengths, self.tokens_per_step, config.seed, e)
                            for e in range(self.hp.n_epochs)]
        self.state = RunState(total_steps=sum(self.steps_per_epoch))
        checkpoint = self._checkpoint_to_resume()
        self.model = self._setup_model(checkpoint)
        self.lm = causal_lm(self.model)
        self.optimizer = torch.optim.AdamW(trainable_parameters(self.model), lr=self.hp.learning_rate,
                                           weight_decay=0.0)
        if checkpoint is not None:
            self.state = ckpt.load_state(checkpoint).run
            ckpt.restore_optimizer_and_rng(checkpoint, self.optimizer)
            log.info("resuming from %s (step %d)", checkpoint, self.state.global_step)
        self.reference = self._reference_logps() if config.method == Method.DPO else None
        # the budget covers the whole run as the user waits for it, loading and tokenising included
        setup_seconds = time.perf_counter() - self._setup_started
        self.planner = BudgetPlanner(config.time_budget - setup_seconds) if config.time_budget else None
        self.events.emit(StartEvent(hyperparameters=self.hp, examples=len(self.train_data),
                                    total_steps=self.state.total_steps, tokens_per_step=self.tokens_per_step,
                                    resumed_at_step=self.state.global_step if checkpoint else None))

    @property
    def steps_per_epoch(self) -> list[int]:
        return [len(plan) for plan in self.epoch_plans]

    def _warn(self, message: str) -> None:
        log.warning("warning: %s", message)
        self.events.emit(WarningEvent(message=message))

    def _checkpoint_to_resume(self) -> Path | None:
        found = ckpt.list_checkpoints(self.out)
        if not self.config.resume:
            if found:
                raise SelftuneError(f"{self.out} already holds checkpoints of a run: pass --resume to continue "
                                    "it, or choose another --out")
            return None
        damaged = []
        while found and (reason := ckpt.problem(found[-1])) is not None:
            damaged.append((found.pop(), reason))
        for checkpoint, reason in damaged:  # removed, so the steps it held can be saved afresh
            self._warn(f"Checkpoint at step {ckpt.step_of(checkpoint)} is unreadable ({reason}); "
                       + (f"resumed from step {ckpt.step_of(found[-1])}" if found else "started from the beginning"))
            if self.dist.is_main:
                shutil.rmtree(checkpoint, ignore_errors=True)
        if not found:
            log.info("no checkpoint in %s: starting from the beginning", self.out)
            return None
        saved = ckpt.load_state(found[-1]).fingerprint
        expected = self._fingerprint()
        if saved != expected:
            changed = sorted(k for k in expected if saved.get(k) != expected[k])
            raise ResumeMismatch(f"the checkpoint in {self.out} was made with a different {', '.join(changed)}; "
                                 "resume with the same settings and files, or use another --out")
        return found[-1]

    def _fingerprint(self) -> dict:
        """What must not change between a run and its resumption."""
        return {"model": self.config.model, "method": self.config.method, "full": self.config.full,
                "train_file": self.train_data.sha256,
                "valid_file": self.valid_data.sha256 if self.valid_data else None,
                "hyperparameters": self.hp.to_dict(), "seed": self.config.seed,
                "time_budget": self.config.time_budget, "max_length": self.max_length,
                "lora_targets": self.config.lora_targets, "lora_dropout": self.config.lora_dropout,
                "precision": self.config.precision,
                **({"init_adapter": _adapter_digest(self.config.init_adapter)} if self.config.init_adapter else {}),
                **({"lora_layers": self.config.lora_layers} if self.config.lora_layers else {})}

    def _setup_model(self, checkpoint: Path | None):
        config = self.config
        torch.manual_seed(config.seed)
        if config.full:
            return load_full_for_training(checkpoint or self.model_folder, self.device)
        if checkpoint is not None or config.init_adapter is not None:  # a fine-tuned model's adapter goes on training
            return load_adapter_for_training(self.model_folder, checkpoint or config.init_adapter, self.dtype,
                                             self.device)
        lora = LoraSettings(rank=config.lora_rank, alpha=self.hp.lora_alpha, dropout=config.lora_dropout,
                            target_modules=config.lora_targets, layers=config.lora_layers)
        return load_for_training(self.model_folder, lora, self.dtype, self.device)

    # ---- DPO reference ---------------------------------------------------------------------------
    def _reference_logps(self) -> dict[str, torch.Tensor]:
        """Log-probabilities of every chosen and rejected answer under the reference model, computed
        once and cached in the output folder (a resumed full fine-tune no longer has the reference
        weights). With LoRA the reference is the same model with the adapter switched off."""
        cache = self.out / "reference_logps.pt"
        fingerprint = json.dumps(self._fingerprint(), sort_keys=True)
        if cache.is_file():
            saved = torch.load(cache, weights_only=True)
            if saved.get("fingerprint") == fingerprint:
                return saved
        result = {"fingerprint": fingerprint}
        for name, data in (("train", self.train_data), ("valid", self.valid_data)):
            if data is None:
                continue
            with self._as_reference(), torch.no_grad():
                result[name] = self._pair_logps(data)
        if self.dist.is_main:
            with atomic_write(cache, "wb") as f:
                torch.save(result, f)
        return result

    def _as_reference(self):
        """The reference model: the base (the adapter switched off), or the fine-tuned model training started
        from (``init_adapter``: the model as loaded, before any step)."""
        if self.config.init_adapter is not None or not hasattr(self.model, "disable_adapter"):
            return nullcontext()
        return self.model.disable_adapter()

    def _pair_logps(self, data: TrainingData) -> torch.Tensor:
        """[n, 2]: summed log-probs of (chosen, rejected) for every pair, in file order."""
        out = torch.zeros(len(data), 2)
        for row in _rows_by_length(data):
            out[row] = self._row_pair_logps(data, row).float().cpu()
        return out

    def _row_pair_logps(self, data: TrainingData, row: list[int]) -> torch.Tensor:
        pairs = [data.pairs[i] for i in row]
        batch = pack([p.chosen for p in pairs] + [p.rejected for p in pairs], self.config.share_prefixes)
        logps = sequence_logps(self.lm, batch, self.dtype)  # [2 * len(row)]
        return logps.view(2, len(row)).T  # [len(row), 2]

    # ---- training ----------------------------------------------------------------------------
    def train(self) -> TrainResult:
        config, state = self.config, self.state
        self.model.train()
        progress = Progress(config.progress, state.total_steps, state.global_step)
        status = RunStatus.SUCCEEDED
        started = time.perf_counter() - state.elapsed
        try:
            while state.global_step < state.total_steps and not state.stopped_early:
                steps = self.epoch_plans[state.epoch]
                while state.step_in_epoch < len(steps) and state.global_step < state.total_steps:
                    step_started = time.perf_counter()
                    metrics = self._step(steps[state.step_in_epoch])
                    seconds = time.perf_counter() - step_started
                    state.step_in_epoch += 1
                    state.global_step += 1
                    state.tokens_seen += metrics["tokens"]
                    state.elapsed = time.perf_counter() - started
                    self._record_step(metrics, seconds, progress)
                    if config.eval_every and state.global_step % config.eval_every == 0:
                        self._evaluate()
                    if self.planner is not None:
                        self._replan(metrics["tokens"], seconds)
                    if self.dist.broadcast(int(self.should_stop())):
                        self.save_checkpoint()
                        self.events.emit(StoppedEvent(step=state.global_step))
                        return self._result(RunStatus.STOPPED)
                if state.step_in_epoch >= len(steps):  # epoch complete
                    state.epoch += 1
                    state.step_in_epoch = 0
                    self._evaluate()
                    state.elapsed = time.perf_counter() - started
                    self.save_checkpoint()
                    self.events.emit(EpochEvent(epoch=state.epoch, step=state.global_step))
            if state.stopped_early:
                status = RunStatus.EARLY_STOPPED
            self._evaluate()  # a run that ended mid-epoch (time budget) still measures its final model
            state.elapsed = time.perf_counter() - started
            self.save_checkpoint()
        finally:
            progress.close()
        return self._result(status)

    def _step(self, examples: list[int]) -> dict:
        """One optimizer step over ``examples`` (split into rows of at most MAX_ROW_TOKENS)."""
        lr = learning_rate_at(self.state.global_step, self.state.total_steps, self.hp.learning_rate)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        mine = micro_batches(self.dist.shard(examples), self.lengths, MAX_ROW_TOKENS)  # this process's share
        if self.train_data.purpose == "sft":
            n_trained = sum(self.train_data.targets[i] for i in examples)
            metrics = self._sft_step(mine, n_trained)
        else:
            metrics = self._dpo_step(mine, len(examples))
        params = trainable_parameters(self.model)
        self.dist.sum_gradients(params)
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, MAX_GRAD_NORM))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        metrics.update(lr=lr, grad_norm=grad_norm, tokens=sum(self.lengths[i] for i in examples))
        return metrics

    def _sft_step(self, rows: list[list[int]], n_trained: int) -> dict:
        """Backward over this process's rows; the loss is a mean over the whole step's trained tokens."""
        sequences = self.train_data.sequences
        loss_sum, correct = 0.0, 0
        for row in rows:
            batch = pack([sequences[i] for i in row], self.config.share_prefixes)
            result = token_loss(self.lm, batch, self.dtype)
            (result.loss_sum / n_trained).backward()
            loss_sum += float(result.loss_sum.detach())
            correct += result.n_correct
        loss_sum, correct = self.dist.sum(loss_sum, correct)
        return {"train_loss": loss_sum / n_trained, "train_accuracy": correct / n_trained}

    def _dpo_step(self, rows: list[list[int]], n_pairs: int) -> dict:
        loss_total, chosen_wins, margin = 0.0, 0.0, 0.0
        for row in rows:
            policy = self._row_pair_logps(self.train_data, row)  # [r, 2]
            reference = self.reference["train"][row].to(policy.device)
            result = dpo_loss(policy[:, 0], policy[:, 1], reference[:, 0], reference[:, 1], self.hp.beta)
            (result.loss * len(row) / n_pairs).backward()
            loss_total += float(result.loss.detach()) * len(row)
            chosen_wins += result.accuracy * len(row)
            margin += result.margin * len(row)
        loss_total, chosen_wins, margin = self.dist.sum(loss_total, chosen_wins, margin)
        return {"train_loss": loss_total / n_pairs, "train_accuracy": chosen_wins / n_pairs,
                "reward_margin": margin / n_pairs}

    def _record_step(self, metrics: dict, seconds: float, progress: Progress) -> None:
        state = self.state
        tokens_per_s = metrics["tokens"] / seconds if seconds > 0 else 0.0
        state.results.append(ResultRow(step=state.global_step, train_loss=metrics["train_loss"],
                                       train_accuracy=metrics["train_accuracy"], valid_loss=None,
                                       valid_mean_token_accuracy=None))
        self.events.emit(StepEvent(
            step=state.global_step, total_steps=state.total_steps, epoch=state.epoch,
            train_loss=round(metrics["train_loss"], 6), train_accuracy=round(metrics["train_accuracy"], 6),
            learning_rate=metrics["lr"], grad_norm=round(metrics["grad_norm"], 4), tokens_per_s=round(tokens_per_s, 1),
            elapsed=round(state.elapsed, 2)))
        progress.update(state.global_step, state.total_steps, metrics["train_loss"], tokens_per_s)

    def _replan(self, tokens: int, seconds: float) -> None:
        state = self.state
        total = self.planner.plan(state.global_step, state.elapsed, tokens, seconds, self.tokens_per_step,
                                  sum(self.steps_per_epoch))
        total = self.dist.broadcast(total)  # every process must stop at the same step
        if total != state.total_steps:
            state.total_steps = max(total, state.global_step)
            self.events.emit(PlanEvent(step=state.global_step, total_steps=state.total_steps,
                                       reason=f"time budget {self.config.time_budget:.0f}s"))

    # ---- evaluation ----------------------------------------------------------------------------
    @torch.no_grad()
    def _evaluate(self) -> None:
        data = self.valid_data
        state = self.state
        if data is None or (state.results and state.results[-1]["step"] == state.global_step
                            and state.results[-1].get("valid_loss") is not None):
            return  # nothing to evaluate, or this step was just evaluated (eval_every at an epoch end)
        self.model.eval()
        try:
            loss, accuracy = self._valid_metrics(data)
        finally:
            self.model.train()
        if state.results and state.results[-1]["step"] == state.global_step:
            state.results[-1].update(valid_loss=loss, valid_mean_token_accuracy=accuracy)
        self.events.emit(EvalEvent(step=state.global_step, valid_loss=round(loss, 6),
                                   valid_mean_token_accuracy=round(accuracy, 6)))
        if state.best_valid_loss is None or loss < state.best_valid_loss - 1e-6:
            state.best_valid_loss, state.evals_since_best = loss, 0
        else:
            state.evals_since_best += 1
            patience = self.config.early_stopping_patience
            if patience and state.evals_since_best >= patience:
                state.stopped_early = True
                self.events.emit(EarlyStopEvent(step=state.global_step, best_valid_loss=state.best_valid_loss))

    def _valid_metrics(self, data: TrainingData) -> tuple[float, float]:
        if data.purpose == "dpo":
            policy, reference = self._pair_logps(data), self.reference["valid"]
            result = dpo_loss(policy[:, 0], policy[:, 1], reference[:, 0], reference[:, 1], self.hp.beta)
            return float(result.loss), result.accuracy
        loss_sum, tokens, correct = 0.0, 0, 0
        for row in self.dist.shard(_rows_by_length(data)):
            result = token_loss(self.lm, pack([data.sequences[i] for i in row], self.config.share_prefixes),
                                self.dtype)
            loss_sum += float(result.loss_sum)
            tokens += result.n_tokens
            correct += result.n_correct
        loss_sum, tokens, correct = self.dist.sum(loss_sum, tokens, correct)
        return loss_sum / tokens, correct / tokens

    # ---- checkpoints and result ------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        state = TrainerState(run=self.state, fingerprint=self._fingerprint())
        path = ckpt.checkpoint_path(self.out, self.state.global_step)
        self.dist.check_in_sync(trainable_parameters(self.model))
        if self.dist.is_main:
            path = ckpt.save_checkpoint(self.out, self.state.global_step, self.model, self.optimizer, state,
                                        self.config.keep_checkpoints)
            write_results_csv(self.out / "results.csv", self.state.results)
            self.events.emit(CheckpointEvent(step=self.state.global_step, path=path))
        self.dist.barrier()
        return path

    def _result(self, status: RunStatus) -> TrainResult:
        return TrainResult(out=self.out, status=status, state=self.state, hyperparameters=self.hp,
                           train=self.train_data, valid=self.valid_data)


def _rows_by_length(data: TrainingData) -> list[list[int]]:
    """All examples in forward passes of at most MAX_ROW_TOKENS, similar lengths together (evaluation)."""
    lengths = data.lengths()
    return micro_batches(sorted(range(len(data)), key=lengths.__getitem__), lengths, MAX_ROW_TOKENS)


def _adapter_digest(folder: Path) -> str:
    """The sha256 of an adapter's weights: a resumed run must continue from the same starting adapter."""
    digest = hashlib.sha256()
    with open(Path(folder) / "adapter_model.safetensors", "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
