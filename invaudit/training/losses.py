"""Cross-entropy and independence cross-entropy (Definition 7).

iCE is a two-player game.  The nuisance classifier D_nc is trained to read
the label from z_n (its *max* step); the network F is trained to minimise

    sCE  -  w_n * CE(D_nc(z_n), y) / n_norm  +  w_mle * MLE_n      (its *min* step)

where ``sCE`` is cross-entropy on the logits z_s, the middle term rewards F
for making D_nc wrong, and ``MLE_n`` is the negative log-likelihood of z_n
under a factorial Gaussian with learned means and scales, minus log|det J_F|,
in bits per input dimension.  The sign of the middle term is the one that
*removes* information from z_n: F ascends D_nc's cross-entropy (the authors'
public code had it both ways; a test checks the effect on a fresh probe).

Beyond the paper, ``independence`` can replace or join the adversary with a
penalty that needs no second player: the normalised HSIC (centred kernel
alignment) between a Gaussian kernel on z_n and the same-class kernel on y.
It is zero exactly when, at the kernel's scale, z_n carries no information
about y within the batch, and it cannot be "fooled" the way a lagging
adversary can.  ``class-means`` penalises the share of z_n's variance that
the class means explain (first-moment dependence, what a linear probe reads);
both penalties take ``hsic_weight``.

``nuisance_objective="confusion"`` changes what F does against D_nc: instead
of ascending D_nc's cross-entropy (Definition 7), which F can also raise by
making D_nc *confidently wrong* (a relabelling that keeps the information),
F minimises the cross-entropy between D_nc's prediction and the uniform
distribution, whose minimum is reached only when D_nc cannot tell the classes
apart (the "confusion" loss of domain adaptation).

``nuisance_objective="permuted"`` is what the authors' public code does: F
makes D_nc predict a random permutation of the batch's labels (cross-entropy
to ``y[randperm]``), which is lowest when D_nc's prediction carries no more
about the example than the label marginal.  ``mle_scope="z"`` puts the
factorial Gaussian on all of z (logits too), as that code's flow NLL does.

``warmup_epochs`` / ``ramp_epochs`` schedule every term beyond sCE: plain CE
first, then a linear ramp to the full weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..models.heads import mlp_classifier


@dataclass(frozen=True)
class ICEConfig:
    """Weights and sizes of the iCE terms.

    Defaults follow Definition 7 literally with Appendix B.2's normalisation:
    every term has weight 1 and the nuisance term is divided by the number of
    dimensions D_nc receives (``normalize_nuisance``), so that a 774-dim z_n
    does not drown the 10 logits; MLE_n is a per-dimension average (bits/dim)
    for the same reason.  ``nuisance_hidden=0`` means the paper's width for
    the dataset (1000 for spheres, 512 for images).
    """

    nuisance_weight: float = 1.0
    mle_weight: float = 1.0
    normalize_nuisance: bool = True
    nuisance_hidden: int = 0
    adversary_steps: int = 1
    independence: str = "adversary"
    hsic_weight: float = 1.0
    warmup_epochs: int = 0
    ramp_epochs: int = 0
    nuisance_objective: str = "ce"
    mle_scope: str = "z_n"

    def __post_init__(self) -> None:
        if self.mle_scope not in MLE_SCOPES:
            raise ConfigError(
                f"mle_scope must be one of {', '.join(MLE_SCOPES)}, got {self.mle_scope!r}"
            )
        if self.nuisance_objective not in NUISANCE_OBJECTIVES:
            raise ConfigError(
                f"nuisance_objective must be one of {', '.join(NUISANCE_OBJECTIVES)}, "
                f"got {self.nuisance_objective!r}"
            )
        if self.independence not in INDEPENDENCE:
            raise ConfigError(
                f"independence must be one of {', '.join(INDEPENDENCE)}, got {self.independence!r}"
            )
        for name in ("nuisance_weight", "mle_weight", "hsic_weight"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                raise ConfigError(f"{name} must be a finite number >= 0, got {getattr(self, name)}")
        for name in ("warmup_epochs", "ramp_epochs"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def uses_adversary(self) -> bool:
        return "adversary" in self.independence.split("+")

    @property
    def uses_hsic(self) -> bool:
        return "hsic" in self.independence.split("+")

    @property
    def uses_class_means(self) -> bool:
        return self.independence == "class-means"

    def schedule(self, progress: float) -> float:
        """The factor on every term beyond sCE after ``progress`` epochs (fractional)."""
        if progress < self.warmup_epochs:
            return 0.0
        if self.ramp_epochs == 0:
            return 1.0
        return min(1.0, (progress - self.warmup_epochs) / self.ramp_epochs)


#: How iCE makes z_n independent of y: Definition 7's adversary, a kernel
#: penalty, both, or the share of z_n's variance the class means explain.
INDEPENDENCE = ("adversary", "hsic", "adversary+hsic", "class-means")

#: What F minimises against D_nc: minus its cross-entropy (Definition 7), the
#: cross-entropy of its prediction to the uniform distribution, or (the authors'
#: public code) its cross-entropy to the batch's labels randomly permuted.
NUISANCE_OBJECTIVES = ("ce", "confusion", "permuted")

#: Where the likelihood term's factorial Gaussian lives: on z_n (Definition 7's
#: MLE_n) or on all of z, logits included (the authors' code).
MLE_SCOPES = ("z_n", "z")


def confusion(logits: torch.Tensor) -> torch.Tensor:
    """Cross-entropy from the uniform distribution to ``softmax(logits)``, minus log K.

    Zero exactly when every prediction is uniform, positive otherwise; unlike
    minus the cross-entropy to the true label it cannot be lowered by
    predicting a wrong class with confidence.
    """
    log_p = F.log_softmax(logits, dim=1)
    return -(log_p.mean(dim=1)).mean() - math.log(logits.shape[1])


def class_mean_share(z: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The share of ``z``'s variance that its class-conditional means explain, in [0, 1].

    Between-class over total sum of squares, pooled over every coordinate: 0
    when every class has the same mean (no first-moment dependence on y, the
    information a linear probe reads), 1 when z is a function of y alone.
    """
    flat = z.flatten(1)
    centred = flat - flat.mean(0)
    onehot = F.one_hot(y, num_classes).to(flat.dtype)
    counts = onehot.sum(0)
    means = (onehot.T @ centred) / counts.clamp_min(1)[:, None]
    between = (counts[:, None] * means.pow(2)).sum()
    return between / centred.pow(2).sum().clamp_min(1e-12)


def normalised_hsic(z: torch.Tensor, y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Centred kernel alignment between a Gaussian kernel on ``z`` and the label kernel.

    The Gaussian bandwidth is the batch's median squared distance (detached, so
    F cannot win by rescaling z_n); the label kernel is 1 for a same-class pair.
    The result lies in [0, 1]; 0 means no dependence the batch can show.
    """
    n = z.shape[0]
    flat = z.flatten(1)
    d2 = torch.cdist(flat, flat).pow(2)
    bandwidth = d2.detach()[~torch.eye(n, dtype=torch.bool, device=z.device)].median()
    k = torch.exp(-d2 / bandwidth.clamp_min(1e-12))
    onehot = F.one_hot(y, num_classes).to(k.dtype)
    ell = onehot @ onehot.T
    centre = torch.eye(n, device=z.device, dtype=k.dtype) - 1.0 / n
    kc, lc = centre @ k @ centre, centre @ ell @ centre
    cross = (kc * lc).sum()
    scale = torch.sqrt((kc * kc).sum() * (lc * lc).sum()).clamp_min(1e-12)
    return cross / scale

class FactorialGaussian(nn.Module):
    """``p(z_n) = prod_k N(z_k; beta_k, exp(log_gamma_k)^2)`` with learned beta, gamma."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.beta = nn.Parameter(torch.zeros(dims))
        self.log_gamma = nn.Parameter(torch.zeros(dims))

    def nll(self, z: torch.Tensor) -> torch.Tensor:
        """``-sum_k log p_k(z_k)`` in nats, per sample: ``[B]``."""
        scaled = (z - self.beta) * torch.exp(-self.log_gamma)
        per_dim = 0.5 * scaled**2 + self.log_gamma + 0.5 * math.log(2 * math.pi)
        return per_dim.sum(dim=1)


def bits_per_dim(nll_nats: torch.Tensor, logdet: torch.Tensor, dim: int) -> torch.Tensor:
    """``MLE_n = mean_b(-log p(z_n) - log|det J|) / (d ln 2)``: bits per input dimension."""
    return (nll_nats - logdet).mean() / (dim * math.log(2))


class NuisanceGame(nn.Module):
    """What iCE adds on top of F: the nuisance classifier D_nc and the prior on z_n."""

    def __init__(self, dim: int, num_classes: int, hidden: int, config: ICEConfig) -> None:
        super().__init__()
        nuisance_dims = dim - num_classes
        self.config = config
        self.dim = dim
        self.classifier = mlp_classifier(nuisance_dims, num_classes, hidden)
        self.prior = FactorialGaussian(dim if config.mle_scope == "z" else nuisance_dims)
        self.norm = nuisance_dims if config.normalize_nuisance else 1

    def prior_input(self, z_s: torch.Tensor, z_n: torch.Tensor) -> torch.Tensor:
        """What the likelihood term scores: z_n, or all of z (``mle_scope="z"``)."""
        return torch.cat([z_s, z_n], dim=1) if self.config.mle_scope == "z" else z_n

    def model_loss(
        self,
        classifier: nn.Module,
        z_s: torch.Tensor,
        z_n: torch.Tensor,
        nll_n: torch.Tensor,
        logdet: torch.Tensor,
        y: torch.Tensor,
        schedule: float = 1.0,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """F's loss in the min step, and its terms for logging.

        ``classifier`` is D_nc (unwrapped); its parameters get gradients here
        but only the max step ever applies them.  ``schedule`` scales every
        term beyond sCE (warm-up and ramp).
        """
        s_ce = F.cross_entropy(z_s, y)
        nuisance_logits = classifier(z_n)
        n_ce = F.cross_entropy(nuisance_logits, y)
        mle = bits_per_dim(nll_n, logdet, self.dim)
        cfg = self.config
        extra = cfg.mle_weight * mle
        terms = {"sce": s_ce.item(), "nce": n_ce.item(), "mle": mle.item()}
        if cfg.uses_adversary and cfg.nuisance_objective == "confusion":
            conf = confusion(nuisance_logits)
            extra = extra + cfg.nuisance_weight * conf / self.norm
            terms["confusion"] = conf.item()
        elif cfg.uses_adversary and cfg.nuisance_objective == "permuted":
            shuffled = y[torch.randperm(len(y), device=y.device)]
            permuted = F.cross_entropy(nuisance_logits, shuffled)
            extra = extra + cfg.nuisance_weight * permuted / self.norm
            terms["permuted"] = permuted.item()
        elif cfg.uses_adversary:
            extra = extra - cfg.nuisance_weight * n_ce / self.norm
        if cfg.uses_hsic:
            hsic = normalised_hsic(z_n, y, z_s.shape[1])
            extra = extra + cfg.hsic_weight * hsic
            terms["hsic"] = hsic.item()
        if cfg.uses_class_means:
            share = class_mean_share(z_n, y, z_s.shape[1])
            extra = extra + cfg.hsic_weight * share
            terms["class_mean_share"] = share.item()
        return s_ce + schedule * extra, terms
