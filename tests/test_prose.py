"""docs/results.md's hand-written prose claims no difference between arms that a generated
verdict does not show.

The page's convention (stated at its top): a generated block (``<!-- reproduce:NAME -->`` or
``<!-- compare:NAME -->``) ends with a "Verdict (generated)" paragraph anchored ``verdict-NAME``
(rnnlab.results.verdicts). Prose outside the blocks may explain *why*; a sentence that compares
arms -- a comparative word (beats, outperforms, better, worse, significant, prevents, solves,
wins, loses, lower/higher than, ...) in a sentence that names an arm (a cell, a variant, an
initialisation, a baseline, ...) -- must point to the verdict that backs it with the link
``[verdict](#verdict-NAME)``, NAME a generated block of the page (``compare-NAME`` for a
``<!-- compare:NAME -->`` block). Sentences that only say what
a paper reports are written without comparative words ("Chung et al. rank ...").
"""

from __future__ import annotations

import re

import pytest
from conftest import REPO

PAGE = REPO / "docs" / "results.md"

BLOCK = re.compile(r"<!-- (reproduce|compare):([\w-]+) -->\n.*?<!-- /\1:\2 -->", re.DOTALL)
POINTER = re.compile(r"\]\(#verdict-([\w-]+)\)")

# A comparison of outcomes, or a claim of a direction or its cause: the words the issue's
# overreaching quotes used, and their kin.
_COMPARATIVE = [
    r"beat(?:s|en|ing)?", r"outperform\w*", r"better", r"worse", r"best", r"worst",
    r"significant(?:ly)?", r"prevent(?:s|ed|ing)?", r"solves?", r"learns?", r"wins?", r"won",
    r"los(?:e|es|ing)", r"ahead of", r"lacks?", r"tendency", r"helps?", r"hurts?",
    r"indistinguishable", r"orders? of magnitude", r"steadier", r"stronger", r"weaker",
    r"(?:lower|higher|more|less|fewer|faster|slower|greater|smaller|larger|longer|shorter|"
    r"wider|narrower) than",
    r"(?:lowest|highest|fastest|slowest|widest|narrowest|steadiest|strongest|weakest)",
    r"lower", r"higher",
]
COMPARATIVE = re.compile(r"\b(?:" + "|".join(_COMPARATIVE) + r")\b", re.IGNORECASE)

# What an arm is on this page: a cell, a variant, a setting compared, a baseline.
_ARM = [
    r"(?:tanh |relu |ReLU )?rnns?", r"grus?", r"lstms?", r"mingru", r"minlstm", r"irnns?",
    r"mgu", r"nfg", r"noaf", r"cifg", r"np", r"nig", r"nog", r"niaf", r"fgr",
    r"cells?", r"variants?", r"arms?", r"bias(?:es)?", r"chrono", r"clipping", r"clip",
    r"init(?:ialisation)?", r"baselines?", r"bag-of-words", r"seasonal naive", r"arima", r"ets",
    r"recurrences?", r"reset-before", r"reset-after",
]
ARM = re.compile(r"\b(?:" + "|".join(_ARM) + r")\b", re.IGNORECASE)

_ABBREVIATIONS = ("al.", "e.g.", "i.e.", "Fig.", "Exp.", "Sec.", "vs.", "cf.", "No.", "Eq.",
                  "approx.", "Tab.")


def strip_blocks(text: str) -> str:
    """The page without its generated blocks (each replaced by one blank line)."""
    return BLOCK.sub("\n", text)


def prose_sentences(text: str) -> list[str]:
    """The hand-written sentences of a page: generated blocks, headings, tables, images, code
    and HTML comments left out; a bullet is a paragraph of its own."""
    text = re.sub(r"<!--.*?-->", "", strip_blocks(text), flags=re.DOTALL)
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    paragraphs, current = [], []
    for line in text.splitlines():
        stripped = line.strip()
        skip = (not stripped or stripped.startswith(("#", "|", "![", "<a id=")))
        if skip or re.match(r"[-*] ", stripped):
            if current:
                paragraphs.append(" ".join(current))
            current = [] if skip else [stripped[2:]]
            continue
        current.append(stripped)
    if current:
        paragraphs.append(" ".join(current))
    sentences = []
    for paragraph in paragraphs:
        pieces = re.split(r"(?<=[.!?])\s+(?=[A-Z*(\[§\"“])", paragraph)
        for piece in pieces:
            if sentences and sentences[-1][1] is paragraph and \
                    sentences[-1][0].endswith(_ABBREVIATIONS):
                sentences[-1] = (f"{sentences[-1][0]} {piece}", paragraph)
            else:
                sentences.append((piece, paragraph))
    return [s for s, _ in sentences]


def overreaches(sentence: str) -> str | None:
    """The comparative word of a sentence that compares arms without pointing to a generated
    verdict; None when it does not compare arms or points to one."""
    if POINTER.search(sentence):
        return None
    # Link targets and code are names, words in quotation marks a paper's or a label's: none is
    # a claim of ours.
    plain = re.sub(r"\]\([^)]*\)|`[^`]*`|\"[^\"]*\"|“[^”]*”", "", sentence)
    word = COMPARATIVE.search(plain)
    if word and ARM.search(plain):
        return word.group(0)
    return None


# The sentences docs/results.md had when the issue ([fair], item 4) quoted them.
ISSUE_QUOTES = [
    # §13: Welch p = 0.34
    "The reset-before GRU (Cho et al. 2014 v3, the form Chung 2014 evaluated) ends with the "
    "lowest loss by two orders of magnitude; without a reset gate the two placements are the "
    "same function and the rows agree to every digit, the sweep's built-in check.",
    # §7: p = 0.053
    "**Beyond the paper** (they ran no GRU/LSTM baseline on this task): at equal parameters and "
    "steps the classic GRU solves it in every seed (0.999) and beats both, while the LSTM "
    "(default init, no forget-gate bias) is the one that fails in this budget (0/3 solved, one "
    "seed at the baseline).",
    # §8: 1 of 3 seeds
    "With identity initialisation the ReLU RNN learns the adding problem at T = 100 (far below "
    "the baseline, Welch p < 0.001 against the ReLU RNN with the default init; one seed of three "
    "under the \"solved\" threshold by the end of 20,000 steps), while the ReLU RNN with "
    "PyTorch's default init, the tanh RNN with either init all stay at the baseline — Le, Jaitly "
    "& Hinton 2015's Fig. 2 finding, at a shorter T and ~50× fewer steps.",
    # §9: divergences 2/3 -> 0/3, Fisher p = 0.4
    "**Agrees on what clipping is for, not on learning:** without clipping, SGD with momentum "
    "diverges in most runs at lr 0.1 and in every run at lr 1 (the \"diverged\" column), and "
    "clipping at 1 prevents it at lr 0.1 and in most runs at lr 1 — the exploding-gradient rescue "
    "of Pascanu, Mikolov & Bengio 2013 (§3.2).",
    # §10: the GRU's interval contains the bag-of-words accuracy
    "**What it shows:** the GRU beats the tanh RNN beyond the seeds' spread (test loss, Welch p "
    "< 0.05), the LSTM is indistinguishable from the GRU, and all three lose to a bag-of-words "
    "logistic regression on the same split.",
    # §15: §17's chrono LSTM solves the same T in the same budget
    "A bias of 1 or 2 is not what the LSTM lacks here; the budget is.",
    # §14: its own table marks p = 0.013
    "At this budget no variant has learned much: every row's test NLL is at or just below the "
    "baseline and the 95% intervals overlap, so neither \"NFG and NOAF clearly worse\" nor \"CIFG "
    "and NP harmless\" is shown (NFG and NOAF are the two rows the verdict puts at the baseline, "
    "a tendency only).",
]

# Explanations, descriptions of a setting and of what a paper reports: no comparative claim.
EXPLANATIONS = [
    "Likely reasons, unverified: this is a different encoding and split (350 chorales at "
    "quarter-note frames, not the pickled JSB set), and at ~20k parameters the gated cells have "
    "a hidden state of ~40 units against the tanh RNN's ~110.",
    "The cause is visible in the data, not the cells: the series rises for 44 years and the test "
    "weeks lie above every level seen in training.",
    "The GRU's update gates open (z near 1: the state is copied, the carry case) over a third to "
    "two thirds of its units and steps, which puts λ₁ within 0.05 of zero.",
    "Chung et al. 2014 (Table 2) rank the GRU first, the LSTM second and the tanh RNN third on "
    "JSB.",
    "The paper preset as it is (100 epochs, ~20k parameters, RMSprop 1e-3, clipping 1): on "
    "music21's chorales it takes about a minute per run on one core, so it needs no CPU "
    "form.",
    "Not yet rebuilt with the fair protocol (`rnnlab-compare`); it needs ~9 CPU-hours at ≥ 10 "
    "evaluation seeds.",
]


@pytest.mark.parametrize("quote", ISSUE_QUOTES)
def test_the_issues_overreaching_quotes_are_caught(quote):
    assert overreaches(quote), quote


@pytest.mark.parametrize("sentence", EXPLANATIONS)
def test_explanations_pass(sentence):
    assert overreaches(sentence) is None


def test_a_pointer_to_a_generated_verdict_lets_a_comparison_stand():
    claim = "The GRU has the lower test loss than the tanh RNN at T = 50."
    assert overreaches(claim) == "lower"
    assert overreaches(claim[:-1] + " ([verdict](#verdict-adding_T)).") is None
    # A link elsewhere is no pointer.
    assert overreaches(claim[:-1] + " ([table](#adding_T)).")


def test_generated_blocks_and_tables_are_not_prose():
    page = ("Intro prose.\n\n<!-- reproduce:copy -->\nThe GRU beats the LSTM.\n"
            "<!-- /reproduce:copy -->\n\n| cell | best |\n|---|---|\n\n## 3. The best cell\n\n"
            "After it. And a second sentence, cf. Fig. 2 of the paper.\n- a bullet\n")
    assert prose_sentences(page) == ["Intro prose.", "After it.",
                                     "And a second sentence, cf. Fig. 2 of the paper.",
                                     "a bullet"]


def _page() -> str:
    return PAGE.read_text()


def test_no_sentence_of_the_page_compares_arms_without_a_verdict():
    bad = [(word, s) for s in prose_sentences(_page()) if (word := overreaches(s))]
    assert not bad, "\n\n".join(f"[{word}] {s}" for word, s in bad)


def test_every_pointer_names_a_generated_block_of_the_page():
    text = _page()
    # rnnlab.results.verdicts.anchor: verdict-NAME, verdict-compare-NAME for a compare block
    blocks = {m.group(2) if m.group(1) == "reproduce" else f"compare-{m.group(2)}"
              for m in BLOCK.finditer(text)}
    named = set(POINTER.findall(re.sub(r"`[^`]*`", "", strip_blocks(text))))
    assert named, "the page points to no verdict"
    assert named <= blocks, f"pointers to no block: {sorted(named - blocks)}"


def test_the_page_states_the_convention_and_each_sections_protocol_status():
    text = _page()
    head = " ".join(text.split("\n## ", 1)[0].split())
    assert "[verdict](#verdict-NAME)" in head and "Verdict (generated)" in head
    for section in re.split(r"\n(?=## \d+\.)", text)[1:]:
        title = section.splitlines()[0]
        first = next(line for line in section.splitlines()[1:] if line.strip())
        assert "fair protocol" in first and ("CPU-hour" in first or "compare:" in first
                                              or "§" in first), title
