"""A proposal close to the model's softmax at sublinear cost: an inverted multi-index over the item table (MIDX).

Pure tensor functions with no RecBole import, like :mod:`recbole_genni.sampling`::

    index = build_index(item_emb, num_clusters=32, generator=g)      # two k-means codebooks, c x c cells
    drawn = index_draw(index, user_emb, 256, temperature=1.0, generator=g)
    drawn.items, drawn.log_prob                                       # [N, K] ids and their log q

The item table ``[|I|, H]`` is cut into two halves, each quantised by k-means into c codewords, so every real item
lies in one of c x c cells (Chen et al., "Learning Recommenders for Implicit Feedback with Importance Resampling",
WWW 2022). A row's query ``z = [z1, z2]`` gives each cell the score ``z1 . C1[k1] + z2 . C2[k2]``: the score of
every item of the cell less its residual. The proposal draws a cell from the softmax of that score / temperature
plus the log of the cell's size, then an item of the cell uniformly, so ``q(i)`` is the softmax over the catalogue
of the items' quantised scores, known exactly for the logQ correction. Per row O(c x H + c^2 + K); the
``[rows, |I|]`` score matrix is never formed.
"""

from typing import NamedTuple, Optional

import torch

__all__ = ["MultiIndex", "IndexDraw", "kmeans", "build_index", "cell_log_weights", "index_draw", "index_log_prob"]


class MultiIndex(NamedTuple):
    """Two codebooks and the items of each cell (cell ``k1 * c + k2``); ids ``1 .. |I| - 1`` (0 is padding)."""

    first: torch.Tensor  # [c, H1] codewords of the first H1 = H // 2 dimensions
    second: torch.Tensor  # [c, H - H1] codewords of the rest
    cell_of: torch.Tensor  # [|I|] LongTensor: each id's cell (padding: -1)
    cell_items: torch.Tensor  # [|I| - 1] the real ids, sorted by cell
    cell_start: torch.Tensor  # [c * c] where each cell's ids begin in cell_items
    cell_size: torch.Tensor  # [c * c] how many ids each cell holds (0: never drawn)

    def state(self) -> dict:
        """The index as plain tensors, for a checkpoint."""
        return self._asdict()


def kmeans(points: torch.Tensor, num_clusters: int, iterations: int = 10,
           generator: Optional[torch.Generator] = None):
    """Lloyd's k-means: ``(centroids [c, D], assignment [n])``, started from c distinct points drawn with
    ``generator``; a cluster left empty keeps its centroid."""
    n = points.shape[0]
    c = min(num_clusters, n)
    start = torch.randperm(n, generator=generator, device=generator.device if generator else None)[:c]
    centroids = points[start.to(points.device)].clone()
    squared = (points * points).sum(dim=1, keepdim=True)
    for _ in range(iterations):
        distances = squared - 2 * points @ centroids.t() + (centroids * centroids).sum(dim=1)
        assignment = distances.argmin(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, assignment, points)
        counts = torch.bincount(assignment, minlength=c).unsqueeze(1)
        centroids = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
    distances = squared - 2 * points @ centroids.t() + (centroids * centroids).sum(dim=1)
    return centroids, distances.argmin(dim=1)


@torch.no_grad()
def build_index(table: torch.Tensor, num_clusters: int, iterations: int = 10,
                generator: Optional[torch.Generator] = None) -> MultiIndex:
    """The multi-index of an item table ``[|I|, H]`` (row 0 padding, left out), c = ``num_clusters`` codewords a
    half, on the table's device."""
    if table.shape[0] < 2 or table.shape[1] < 2:
        raise ValueError(f"an index needs at least one real item and two dimensions, got {list(table.shape)}")
    items = table[1:].float()
    half = table.shape[1] // 2
    first, first_of = kmeans(items[:, :half], num_clusters, iterations, generator)
    second, second_of = kmeans(items[:, half:], num_clusters, iterations, generator)
    c = max(first.shape[0], second.shape[0])
    if first.shape[0] < c or second.shape[0] < c:  # fewer items than codewords: pad with unused codewords
        first = torch.cat([first, first.new_zeros(c - first.shape[0], first.shape[1])])
        second = torch.cat([second, second.new_zeros(c - second.shape[0], second.shape[1])])
    cells = first_of * c + second_of  # [|I| - 1]
    order = torch.argsort(cells, stable=True)
    size = torch.bincount(cells, minlength=c * c)
    cell_of = torch.cat([cells.new_full((1,), -1), cells])
    return MultiIndex(first, second, cell_of, order + 1, size.cumsum(0) - size, size)


def cell_log_weights(index: MultiIndex, query: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``[N, c * c]``: each cell's score / temperature plus the log of its size (-inf for an empty cell), the
    unnormalised log probability of drawing the cell."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    half = index.first.shape[1]
    query = query.float()
    first = query[:, :half] @ index.first.t()  # [N, c]
    second = query[:, half:] @ index.second.t()  # [N, c]
    scores = (first.unsqueeze(2) + second.unsqueeze(1)).flatten(1) / temperature  # [N, c * c]
    return scores + index.cell_size.float().log()


class IndexDraw(NamedTuple):
    """What :func:`index_draw` returns."""

    items: torch.Tensor  # [N, K] real ids
    log_prob: torch.Tensor  # [N, K] log q of each under the row's proposal
    log_weights: torch.Tensor  # [N, c * c] the rows' cell log weights (:func:`cell_log_weights`)
    log_norm: torch.Tensor  # [N, 1] their log-sum-exp


def index_draw(index: MultiIndex, query: torch.Tensor, num_samples: int, temperature: float = 1.0,
               generator: Optional[torch.Generator] = None) -> IndexDraw:
    """K independent draws per row of ``query`` ``[N, H]`` from the index's proposal (a cell by its weight, then an
    item of the cell uniformly), on the query's device, with ``generator`` on that device."""
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    log_weights = cell_log_weights(index, query, temperature)
    log_norm = torch.logsumexp(log_weights, dim=1, keepdim=True)
    # inverse CDF over the cells, in float64 so that a small cell keeps its share
    cdf = (log_weights - log_norm).double().exp().cumsum(dim=1)
    u = torch.rand(query.shape[0], num_samples, generator=generator, device=query.device, dtype=torch.float64)
    cells = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).clamp_(max=cdf.shape[1] - 1)
    size = index.cell_size[cells]
    within = (torch.rand(cells.shape, generator=generator, device=query.device) * size).long()
    items = index.cell_items[index.cell_start[cells] + torch.minimum(within, size - 1)]
    log_prob = log_weights.gather(1, cells) - log_norm - size.float().log()
    return IndexDraw(items, log_prob, log_weights, log_norm)


def index_log_prob(index: MultiIndex, items: torch.Tensor, log_weights: torch.Tensor, log_norm: torch.Tensor,
                   rows: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``log q`` of any real ``items`` under the rows' proposal (``log_weights`` and ``log_norm`` of their
    :class:`IndexDraw`): the cell's probability shared by its items. ``items`` ``[N, J]``, or flat ``[P]`` with
    ``rows`` ``[P]`` saying whose each is (a history's pairs, without an ``[P, c * c]`` copy); same shape out."""
    cells = index.cell_of[items]
    if rows is None:
        return log_weights.gather(1, cells) - log_norm - index.cell_size[cells].float().log()
    return log_weights[rows, cells] - log_norm[rows, 0] - index.cell_size[cells].float().log()

