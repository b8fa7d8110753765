"""A trained run's accuracy at each position t of the sequence, on the test split at the length
it trained on and on fresh test sets at longer lengths (length generalisation); its command,
rnnlab-by-position, is rnnlab.commands.by_position.

For tasks scored at every step (``step_classification``: copy, selective copy, parity). The
headline accuracy averages over positions, which hides *where* a model fails: on parity a cell
that tracks the state only over a short window is exact at the first steps and at chance after.
Per run, per length: the accuracy over all scored steps (at the trained length, the run's own
test split, so it equals results.json's test/acc for the best checkpoint) and the accuracy in
``bins`` equal ranges of the scored positions (:func:`render`: a table per length).
"""

from __future__ import annotations

from pathlib import Path


def position_counts(model, dataloader) -> tuple[list[int], list[int]]:
    """Per position t: (correct, scored) over the loader's batches, in eval mode and no grad."""
    import torch

    from rnnlab.cells.sequence import lengths_mask

    correct = torch.zeros(0, dtype=torch.long)
    scored = torch.zeros(0, dtype=torch.long)
    with torch.no_grad():
        for batch in dataloader:
            x, y, lengths = batch["x"], batch["y"], batch.get("lengths")
            steps = y.shape[1]
            mask = torch.ones_like(y, dtype=torch.bool)
            if lengths is not None:  # padded batches: only each sequence's own steps (as task.py)
                mask &= lengths_mask(lengths, steps).t()
            if "score_mask" in batch:  # copy: only the recalled symbols are scored
                mask &= batch["score_mask"]
            hit = (model(x, lengths).argmax(-1) == y) & mask
            if steps > len(correct):
                grow = steps - len(correct)
                correct = torch.cat([correct, torch.zeros(grow, dtype=torch.long)])
                scored = torch.cat([scored, torch.zeros(grow, dtype=torch.long)])
            correct[:steps] += hit.sum(0)
            scored[:steps] += mask.sum(0)
    return correct.tolist(), scored.tolist()


def binned(correct: list[int], scored: list[int], bins: int) -> list[dict]:
    """Accuracy in ``bins`` equal ranges of the scored positions (fewer if fewer positions)."""
    positions = [t for t, n in enumerate(scored) if n]
    bins = min(bins, len(positions))
    out = []
    for b in range(bins):
        part = positions[len(positions) * b // bins: len(positions) * (b + 1) // bins]
        hits, total = sum(correct[t] for t in part), sum(scored[t] for t in part)
        out.append({"first": part[0] + 1, "last": part[-1] + 1, "acc": hits / total})
    return out


def by_position(run_dir: Path, seq_lens: list[int] | None = None, bins: int = 8,
                checkpoint: str = "best") -> dict:
    """``{"checkpoint", "step", "trained_seq_len", "lengths": {T: {"acc", "bins", "correct",
    "scored"}}}`` for ``run_dir``; ValueError (one line) if it cannot be measured."""
    from rnnlab.run.trained import load_trained

    trained = load_trained(run_dir, checkpoint)
    kind = trained.data.spec.task_kind
    if kind != "step_classification":
        raise ValueError(f"{run_dir}: data={trained.config.data.name} is a {kind} task; "
                         "accuracy by position needs a task scored at every step "
                         "(step_classification: copy, selective_copy, parity)")
    trained_len = trained.config.data.get("seq_len")
    if seq_lens and trained_len is None:
        raise ValueError(f"{run_dir}: data={trained.config.data.name} has no data.seq_len to "
                         "vary; run without --seq-len")
    lengths = {}
    for length in seq_lens or [trained_len]:
        overrides = {} if length == trained_len else {"seq_len": length}
        datamodule = trained.datamodule(**overrides)
        correct, scored = position_counts(trained.model, datamodule.test_dataloader())
        lengths[str(length)] = {"acc": sum(correct) / max(sum(scored), 1),
                                "bins": binned(correct, scored, bins),
                                "correct": correct, "scored": scored}
    return {"run_dir": str(run_dir), "checkpoint": checkpoint, "step": trained.step,
            "cell": trained.config.model.cell, "trained_seq_len": trained_len,
            "lengths": lengths}


def render(results: list[dict]) -> str:
    """Per test length, one markdown table: a row per run, its accuracy overall and in each
    position range."""
    tables = {}
    for result in results:
        for length, entry in result["lengths"].items():
            rows = tables.setdefault(length, [["run", "cell", "acc"] + [
                f"t {b['first']}–{b['last']}" for b in entry["bins"]]])
            rows.append([result["run_dir"], result["cell"], f"{entry['acc']:.3f}"]
                        + [f"{b['acc']:.3f}" for b in entry["bins"]])
    out = []
    for length, rows in tables.items():
        out += [f"T = {length}:", "", "| " + " | ".join(rows[0]) + " |",
                "|" + "---|" * len(rows[0])]
        out += ["| " + " | ".join(row) + " |" for row in rows[1:]] + [""]
    return "\n".join(out).rstrip()
