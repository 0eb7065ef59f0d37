"""The isotropy probe: how evenly a model's hidden states use their space, per language and layer.

Two measures over token representations of benchmark text (padding left out):
- average cosine similarity of random pairs of token representations, the anisotropy baseline of
  Ethayarajh (2019), "How Contextual are Contextualized Word Representations?": near 0 for an isotropic
  space, near 1 when every representation points the same way;
- IsoScore, Rudman, Gillman, Rayne and Eickhoff (2022), "IsoScore: Measuring the Uniformity of Embedding
  Space Utilization": reorient the points along their principal components, take the variance per
  component, scale that vector to norm sqrt(n), measure its distance d from the all-ones vector
  (normalised by sqrt(2(n - sqrt(n)))), phi = (n - d^2 (n - sqrt(n)))^2 / n^2, and IsoScore =
  (n phi - 1) / (n - 1): 1 when every dimension carries equal variance, 0 when one dimension carries all.
Multilingual spaces are anisotropic and their degenerate directions differ per language, so the probe is
taken per language, for the base model and for each adapter."""

from __future__ import annotations

import math

import torch


def average_cosine(points: torch.Tensor, pairs: int = 2000, seed: int = 0) -> float:
    """Mean cosine similarity of `pairs` random pairs of distinct rows of `points` (tokens x dims)."""
    n = points.shape[0]
    if n < 2:
        return float("nan")
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, n, (pairs,), generator=g)
    b = (a + torch.randint(1, n, (pairs,), generator=g)) % n  # never the same row
    x = torch.nn.functional.normalize(points[a].double(), dim=-1)
    y = torch.nn.functional.normalize(points[b].double(), dim=-1)
    return float((x * y).sum(-1).mean())


def isoscore(points: torch.Tensor) -> float:
    """IsoScore of `points` (tokens x dims), Rudman et al. (2022), steps as in the module docstring."""
    x = points.double()
    x = x - x.mean(0, keepdim=True)
    n = x.shape[1]
    # step 1-2: the variance along each principal component = the covariance matrix's eigenvalues
    cov = x.T @ x / max(x.shape[0] - 1, 1)
    variances = torch.linalg.eigvalsh(cov).clamp(min=0)
    norm = torch.linalg.vector_norm(variances)
    if norm == 0:
        return 0.0
    scaled = math.sqrt(n) * variances / norm  # step 3
    delta = float(torch.linalg.vector_norm(scaled - 1)) / math.sqrt(2 * (n - math.sqrt(n)))  # step 4
    phi = (n - delta**2 * (n - math.sqrt(n))) ** 2 / n**2  # step 5
    return (n * phi - 1) / (n - 1)  # step 6


def hidden_states(
    model, tokenizer, texts: list[str], *, max_tokens: int, max_length: int = 256, batch_size: int = 8
) -> list[torch.Tensor]:
    """Per layer (embeddings first), the representations of up to `max_tokens` real tokens of `texts`."""
    device = next(model.parameters()).device
    per_layer: list[list[torch.Tensor]] = []
    seen = 0
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(
            texts[start : start + batch_size], return_tensors="pt", padding=True, truncation=True, max_length=max_length
        )
        with torch.no_grad():
            out = model(**{k: v.to(device) for k, v in enc.items()}, output_hidden_states=True)
        mask = enc["attention_mask"].bool()
        for layer, states in enumerate(out.hidden_states):
            if len(per_layer) <= layer:
                per_layer.append([])
            per_layer[layer].append(states.float().cpu()[mask])
        seen += int(mask.sum())
        if seen >= max_tokens:
            break
    return [torch.cat(chunks)[:max_tokens] for chunks in per_layer]


def measure(
    model, tokenizer, texts_by_language: dict[str, list[str]], *, max_tokens: int = 2000, seed: int = 0
) -> dict[str, float]:
    """`isotropy.<lang>.layer<k>.avg_cos` and `.isoscore` for every language and layer."""
    metrics: dict[str, float] = {}
    for lang, texts in texts_by_language.items():
        for layer, points in enumerate(hidden_states(model, tokenizer, texts, max_tokens=max_tokens)):
            metrics[f"isotropy.{lang}.layer{layer}.avg_cos"] = average_cosine(points, seed=seed)
            metrics[f"isotropy.{lang}.layer{layer}.isoscore"] = isoscore(points)
    return metrics
