"""Annotator reliability: Dawid-Skene style EM over behaviour classes, and degenerate-annotator checks.

One latent class per annotator, decided by all of its votes (as in Dawid-Skene), with profiles richer
than honest / adversarial / random: "honest" (votes follow Bradley-Terry), "inverted" (BT with the sign
flipped: its votes are read the other way round), "noisy" (honest with a coin flip in a share 1 - eps of
its votes), "slot_a" / "slot_b" (honest except a share rho of votes that go to one screen slot). eps,
rho and the class proportions are shared by all annotators of a class, so they are estimated from
thousands of votes. A vote's weight in the BT fit is its posterior probability of following BT.
Every computation treats the two slots symmetrically (slot sums are added pairwise first), so swapping
model_a/model_b in every row swaps slot_a and slot_b and changes no other float.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

MIN_VOTES_DEGENERATE = 10
RULE = ("each annotator belongs to one latent class (EM over all its votes, Dawid-Skene style): honest, inverted "
        "(votes read flipped), noisy (a coin flip in a shared share of its votes), slot_a / slot_b (a shared share "
        "of its votes go to one slot); a vote's weight is its posterior probability of following Bradley-Terry; "
        "weight = the annotator's expected share of such votes; annotators with at least "
        f"{MIN_VOTES_DEGENERATE} votes that are all ties (always_tie) or all for one slot (constant_vote) get weight 0")


def degenerate(ann: np.ndarray, n_ann: int, y: np.ndarray, first_won: np.ndarray, slots: bool = True) -> np.ndarray:
    """Per annotator: "" or the reason its votes carry no order information ("always_tie", "constant_vote":
    always the same slot; checked only when slots mean screen positions, not pairs cut from rankings)."""
    known = ann >= 0
    a, yy, fw = ann[known], y[known], first_won[known]
    n = np.bincount(a, minlength=n_ann)
    ties = np.bincount(a, yy == 0.5, n_ann)
    dec = yy != 0.5
    slot_a = np.bincount(a[dec], fw[dec], n_ann)
    nd = n - ties
    reason = np.full(n_ann, "", dtype=object)
    big = n >= MIN_VOTES_DEGENERATE
    reason[big & (ties == n)] = "always_tie"
    if slots:
        reason[big & (nd > 0) & (ties == 0) & ((slot_a == nd) | (slot_a == 0))] = "constant_vote"
    return reason


def _sym_sum(x: np.ndarray) -> np.ndarray:
    """Row sums with the two slot classes added first: swapping slots gives bit-identical sums."""
    return (x[:, 0:1] + x[:, 1:2] + x[:, 2:3]) + (x[:, 3:4] + x[:, 4:5])


def class_report(ann: np.ndarray, n_ann: int, y: np.ndarray, first_won: np.ndarray, margin: np.ndarray,
                   pi: np.ndarray, weight: np.ndarray, names: tuple[str, ...], reason: np.ndarray,
                   dropped: np.ndarray) -> dict[str, np.ndarray]:
    """Per-annotator statistics for the build report (weight = honest + inverted share of its votes)."""
    known = ann >= 0
    a, yy, fw, d = ann[known], y[known], first_won[known], margin[known]
    dec = yy != 0.5
    n = np.bincount(a, minlength=n_ann).astype(float)
    nd = np.bincount(a[dec], minlength=n_ann).astype(float)
    safe = np.maximum(nd, 1)
    weight = np.where(dropped, 0.0, weight)
    status = np.where(dropped, "dropped", np.where(pi[:, 1] > 0.5, "inverted",
                      np.where(weight < 0.9, "down-weighted", "kept")))
    out = {"votes": n, "decisive": nd, "tie_rate": (n - nd) / np.maximum(n, 1),
           "a_share": np.bincount(a[dec], fw[dec], n_ann) / safe,
           "agreement": np.bincount(a[dec], d[dec] > 0, n_ann) / safe, "weight": weight}
    out.update({c: pi[:, k] for k, c in enumerate(names)})
    out.update(status=status.astype(object), reason=reason.astype(object))
    return out


PROFILES = ("honest", "inverted", "noisy", "slot_a", "slot_b")
LAPSE = 0.05


@dataclass
class ClassState:
    props: np.ndarray                  # [5] class proportions (the prior of every annotator's class)
    eps: float = 0.5                   # BT share of a noisy annotator's votes
    rho: float = 0.5                   # slot share of a position-biased annotator's votes
    beta: float = 1.0                  # vote sharpness vs the fitted margins (MAP margins are shrunk)
    post: np.ndarray | None = None     # [n_ann, 5] class posteriors


def initial_state(n_ann: int) -> ClassState:
    return ClassState(np.array([0.8, 0.05, 0.05, 0.05, 0.05]), post=np.tile([1.0, 0, 0, 0, 0], (n_ann, 1)))


def _class_terms(s: np.ndarray, fw: np.ndarray, eps: float, rho: float) -> tuple[list, list]:
    """Per decisive row: each class's likelihood (with the lapse) and its BT-component responsibility.
    ``s`` = sigmoid(beta * winner margin), ``fw`` = the winner sat in slot a (0/1)."""
    noisy = eps * s + (1 - eps) * 0.5
    sa, sb = rho * fw + (1 - rho) * s, rho * (1.0 - fw) + (1 - rho) * s
    lik = [(1.0 - LAPSE) * x + LAPSE * 0.5 for x in (s, 1.0 - s, noisy, sa, sb)]
    resp = [eps * s / noisy, (1 - rho) * s / sa, (1 - rho) * s / sb]   # noisy, slot_a, slot_b
    return lik, resp


CHUNK = 1 << 18     # decisive votes per block in the per-annotator sums (bounds the temporaries)


def _class_sums(ks: np.ndarray, s: np.ndarray, fw: np.ndarray, eps: float, rho: float, n_ann: int
                ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per annotator: the log-likelihood of its votes under noisy / slot_a / slot_b, and those classes'
    BT responsibilities summed, accumulated over blocks of votes (the same sums at a fixed block size
    whatever the memory; only the summation order differs from one pass)."""
    ll = [np.zeros(n_ann) for _ in range(3)]
    rs = [np.zeros(n_ann) for _ in range(3)]
    for lo in range(0, len(ks), CHUNK):
        c = slice(lo, lo + CHUNK)
        lik, resp = _class_terms(s[c], fw[c], eps, rho)
        for t in range(3):
            ll[t] += np.bincount(ks[c], np.log(lik[2 + t]), n_ann)
            rs[t] += np.bincount(ks[c], resp[t], n_ann)
    return ll, rs


def class_step(ann: np.ndarray, n_ann: int, margin: np.ndarray, y: np.ndarray, first_won: np.ndarray,
               st: ClassState, zero: np.ndarray, inner: int = 6, sharpen: bool = True, slots: bool = True
               ) -> tuple[np.ndarray, np.ndarray, ClassState]:
    """EM over annotator classes and the class-level rates for fixed theta; returns the row weights
    (honest, inverted) and the new state. Ties count for the BT share of the annotator's classes.
    ``slots=False`` leaves out the slot classes (pairs decomposed from rankings have no screen slots).
    A lapse share of every class's votes is a coin flip, so a few surprising votes (common when the
    margins are thin-data estimates) cannot push a clearly directional annotator into "noisy"."""
    allowed = np.array([True, True, True, slots, slots])
    known = ann >= 0
    k = np.maximum(ann, 0)
    dec = y != 0.5
    sel = known & dec
    ks, fw, m0 = ann[sel], first_won[sel].astype(float), margin[sel]
    props, eps, rho, post = st.props, st.eps, st.rho, st.post
    beta = _sharpness(m0, post[ks], st.beta) if sharpen else 1.0
    s = expit(beta * m0)
    n_k = np.maximum(np.bincount(ks, minlength=n_ann), 0)
    fixed = [np.bincount(ks, np.log((1.0 - LAPSE) * x + LAPSE * 0.5), n_ann) for x in (s, 1.0 - s)]
    for _ in range(inner):
        sums_ll, sums_resp = _class_sums(ks, s, fw, eps, rho, n_ann)
        ll = np.stack(fixed + sums_ll, axis=1)
        ll = np.where(allowed, ll + np.log(np.maximum(props, 1e-300)), -np.inf)
        new = np.exp(ll - ll.max(axis=1, keepdims=True))
        new /= _sym_sum(new)
        done = np.max(np.abs(new - post), initial=0.0) < 1e-4
        post = new
        props = np.where(allowed, post.sum(axis=0) + 1.0, 0.0) / (n_ann + allowed.sum())
        # class-level rates: sums over annotators of posterior x (that annotator's BT responsibilities)
        r_noisy, r_a, r_b = sums_resp
        eps = float(np.clip(post[:, 2] @ r_noisy / max(post[:, 2] @ n_k, 1e-12), 0.02, 0.98))
        slot_n = post[:, 3] @ n_k + post[:, 4] @ n_k
        rho = float(np.clip(1.0 - (post[:, 3] @ r_a + post[:, 4] @ r_b) / max(slot_n, 1e-12), 0.02, 0.98))
        if done:
            break
    w_h, w_f = np.ones(len(y)), np.zeros(len(y))
    rows = np.flatnonzero(sel)
    for lo in range(0, len(ks), CHUNK):   # chunked: at 3M votes each full-length temporary is ~24 MB
        c = slice(lo, lo + CHUNK)
        _, resp = _class_terms(s[c], fw[c], eps, rho)
        pr = post[ks[c]]
        w_h[rows[c]] = pr[:, 0] + pr[:, 2] * resp[0] + (pr[:, 3] * resp[1] + pr[:, 4] * resp[2])
        w_f[rows[c]] = pr[:, 1]
    share = class_bt_share(post, eps, rho)
    tie = known & ~dec
    w_h[tie] = share[k[tie]] - post[k[tie], 1]
    w_f[tie] = post[k[tie], 1]
    off = known & zero[k]
    w_h[off] = w_f[off] = 0.0
    return w_h, w_f, ClassState(props, eps, rho, beta, post)


def _sharpness(m: np.ndarray, pr: np.ndarray, beta: float, steps: int = 3) -> float:
    """1-D Newton for beta in P(vote) = sigmoid(beta * margin) over the votes of honest / inverted
    annotators (inverted read flipped): MAP margins are shrunk toward the prior, so honest votes are
    sharper than the margins say, and without beta honest and noisy annotators look alike."""
    w_h, w_f = pr[:, 0], pr[:, 1]
    for _ in range(steps):
        s = expit(beta * m)
        g = np.sum(w_h * (1 - s) * m - w_f * s * m)
        h = -np.sum((w_h + w_f) * s * (1 - s) * m * m)
        if h >= -1e-12:
            break
        beta = float(np.clip(beta - g / h, 0.5, 5.0))
    return beta


def class_bt_share(post: np.ndarray, eps: float, rho: float) -> np.ndarray:
    """Expected share of an annotator's votes that follow BT (honest or inverted)."""
    return post[:, 0] + post[:, 1] + eps * post[:, 2] + (1 - rho) * (post[:, 3] + post[:, 4])
