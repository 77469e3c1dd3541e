"""Padding-free packing: many examples in one row, each attending only to itself.

The linear layers (almost all of the compute) see one row of real tokens and no padding. Attention
is the only part that needs the example boundaries; :mod:`selftune.train.attention` regroups the
row into per-example segments with the index tensors built here, once per batch.

Examples that start with the same tokens (the same system prompt in every example is the common
case) can share that prefix: it is placed in the row once, and every example's own tokens attend
to it. The prefix's hidden states are identical in every example, so the loss and the gradients
equal the unshared computation (up to float rounding); the row is shorter by the repeats.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

MIN_SHARED_PREFIX = 8  # tokens; sharing a shorter prefix saves less than the bookkeeping costs


@dataclass(frozen=True)
class Sequence:
    """One tokenised conversation: its tokens and which of them the loss predicts."""

    input_ids: torch.Tensor  # [L] long
    trained: torch.Tensor  # [L] bool: does the loss include predicting this token?

    @classmethod
    def of(cls, input_ids: list[int], trained: list[bool]) -> Sequence:
        return cls(torch.tensor(input_ids, dtype=torch.long), torch.tensor(trained, dtype=torch.bool))

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])


@dataclass
class AttentionPlan:
    """Index tensors that let attention run per segment on a packed row.

    A segment is one example's own tokens (its queries), attending to its shared prefix (if any)
    and causally to itself. ``query_index`` [S, Lq] and ``key_index`` [S, Lk] gather the segment's
    positions out of the row (padded with position 0); ``mask`` [S, 1, Lq, Lk] says which keys each
    query sees; ``scatter_index`` [T] maps every row position back to its slot in the flattened
    [S * Lq] segment output.
    """

    query_index: torch.Tensor
    key_index: torch.Tensor
    mask: torch.Tensor
    scatter_index: torch.Tensor

    def to(self, device: torch.device) -> AttentionPlan:
        return AttentionPlan(*(t.to(device) for t in (self.query_index, self.key_index, self.mask,
                                                     self.scatter_index)))


@dataclass
class PackedBatch:
    input_ids: torch.Tensor  # [1, T]
    position_ids: torch.Tensor  # [1, T], restarting at 0 for every example (continuing after a shared prefix)
    plan: AttentionPlan
    loss_positions: torch.Tensor  # [N] row positions whose hidden state predicts a trained token
    labels: torch.Tensor  # [N] the trained tokens
    loss_example: torch.Tensor  # [N] index of the example (in the batch) each trained token belongs to
    n_examples: int
    n_tokens: int  # tokens of the examples as if unpacked and unshared (what the data holds)

    @property
    def n_row_tokens(self) -> int:
        """Tokens the model actually computed (shared prefixes counted once)."""
        return int(self.input_ids.shape[1])


def pack(sequences: list[Sequence], share_prefixes: bool = True) -> PackedBatch:
    """Pack ``sequences`` into one row; with ``share_prefixes``, common prefixes are stored once.

    Work here is per example (tensor ops), never per token.
    """
    groups = _prefix_groups(sequences) if share_prefixes else [(0, [i]) for i in range(len(sequences))]
    pieces: list[torch.Tensor] = []
    positions: list[torch.Tensor] = []
    segments: list[tuple[torch.Tensor, torch.Tensor, int]] = []  # (query slots, key slots, prefix length)
    loss_positions: list[torch.Tensor] = []
    labels: list[torch.Tensor] = []
    loss_example: list[torch.Tensor] = []
    length = 0
    for prefix_len, members in groups:
        prefix_slots = torch.arange(length, length + prefix_len)
        if prefix_len:
            pieces.append(sequences[members[0]].input_ids[:prefix_len])
            positions.append(torch.arange(prefix_len))
            segments.append((prefix_slots, prefix_slots, 0))
            length += prefix_len
        for index in members:
            seq = sequences[index]
            own = seq.input_ids[prefix_len:]
            own_slots = torch.arange(length, length + len(own))
            pieces.append(own)
            positions.append(torch.arange(prefix_len, len(seq)))
            slots = torch.cat([prefix_slots, own_slots])  # row slot of every token of the example
            segments.append((own_slots, slots, prefix_len))
            length += len(own)
            targets = seq.trained[1:].nonzero().squeeze(1) + 1  # tokens the loss predicts
            loss_positions.append(slots[targets - 1])
            labels.append(seq.input_ids[targets])
            loss_example.append(torch.full_like(targets, index))
    return PackedBatch(
        input_ids=torch.cat(pieces).unsqueeze(0),
        position_ids=torch.cat(positions).unsqueeze(0),
        plan=_plan(segments, length),
        loss_positions=torch.cat(loss_positions),
        labels=torch.cat(labels),
        loss_example=torch.cat(loss_example),
        n_examples=len(sequences),
        n_tokens=sum(len(s) for s in sequences),
    )


def _plan(segments: list[tuple[torch.Tensor, torch.Tensor, int]], row_length: int) -> AttentionPlan:
    n = len(segments)
    lq = max(len(q) for q, _, _ in segments)
    lk = max(len(k) for _, k, _ in segments)
    query_index = torch.zeros(n, lq, dtype=torch.long)
    key_index = torch.zeros(n, lk, dtype=torch.long)
    mask = torch.zeros(n, 1, lq, lk, dtype=torch.bool)
    scatter = torch.empty(row_length, dtype=torch.long)
    causal = torch.ones(lq, lq, dtype=torch.bool).tril()
    for s, (queries, keys, prefix_len) in enumerate(segments):
        q, k = len(queries), len(keys)
        query_index[s, :q] = queries
        key_index[s, :k] = keys
        mask[s, 0, :q, :prefix_len] = True
        mask[s, 0, :q, prefix_len:k] = causal[:q, :q]
        mask[s, 0, q:, 0] = True  # padding queries look at one key so softmax stays finite; discarded
        scatter[queries] = s * lq + torch.arange(q)
    return AttentionPlan(query_index, key_index, mask, scatter)


def _prefix_groups(sequences: list[Sequence]) -> list[tuple[int, list[int]]]:
    """Group examples that share an untrained prefix of at least MIN_SHARED_PREFIX tokens.

    Sorting the token lists puts examples with common prefixes next to each other; consecutive
    runs are grouped while their common prefix stays long enough. One level of sharing only:
    the common case (one system prompt) needs no more.
    """
    keys = [s.input_ids.tolist() for s in sequences]
    order = sorted(range(len(sequences)), key=keys.__getitem__)
    groups: list[tuple[int, list[int]]] = []
    members: list[int] = []
    common = 0
    for index in order:
        if not members:
            members, common = [index], _shareable(sequences[index])
            continue
        candidate = min(common, _common_prefix(sequences[members[0]].input_ids, sequences[index].input_ids),
                        _shareable(sequences[index]))
        if candidate >= MIN_SHARED_PREFIX:
            members.append(index)
            common = candidate
        else:
            groups.append((common if len(members) > 1 else 0, members))
            members, common = [index], _shareable(sequences[index])
    if members:
        groups.append((common if len(members) > 1 else 0, members))
    return groups


def _shareable(seq: Sequence) -> int:
    """Longest prefix that may be shared: it holds no trained token and leaves one token of its own."""
    trained = seq.trained.nonzero()
    first_trained = int(trained[0, 0]) if len(trained) else len(seq)
    return min(first_trained, len(seq) - 1)


def _common_prefix(a: torch.Tensor, b: torch.Tensor) -> int:
    n = min(len(a), len(b))
    differ = (a[:n] != b[:n]).nonzero()
    return int(differ[0, 0]) if len(differ) else n
