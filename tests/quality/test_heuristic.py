"""The heuristic: the paper's four features, without punishing code, SQL or long answers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from envirollm_core.quality import heuristic_score
from envirollm_core.quality.heuristic import _sentences

EXPLAIN = "Explain how quantum computing works in simple terms."
GOOD = (
    "Quantum computers use qubits instead of ordinary bits. A bit is either 0 or 1, but a qubit can hold a "
    "blend of both at once, which physicists call superposition. Qubits can also be entangled, so measuring one "
    "tells you something about its partner. Quantum algorithms arrange these effects so that wrong answers "
    "cancel out and the right one becomes likely when the machine is measured. For a few problems, such as "
    "factoring large numbers or simulating molecules, this can be far faster than a classical computer. "
    "Today's devices are still small and noisy, so error correction remains the main challenge."
)
CODE_PROMPT = "Write a Python function that sorts a list using bubble sort."
CODE = '''```python
def bubble_sort(items):
    result = list(items)
    for end in range(len(result) - 1, 0, -1):
        for i in range(end):
            if result[i] > result[i + 1]:
                result[i], result[i + 1] = result[i + 1], result[i]
    return result
```'''
SQL_PROMPT = "Write a SQL query that returns the total sales per customer, largest first."
SQL = "SELECT customer_id, SUM(amount) AS total_sales\nFROM sales\nGROUP BY customer_id\nORDER BY total_sales DESC;"
TOKYO_PROMPT = "Write a detailed three-day travel itinerary for a first visit to Tokyo."
TOKYO = """# Three days in Tokyo

## Day 1: old Tokyo and the river
- **Morning:** Start at Senso-ji in Asakusa before the tour buses arrive. Walk up Nakamise street for rice crackers and small souvenirs.
- **Afternoon:** Take the water bus down the Sumida river to Hama-rikyu, a former shogun's garden with a tea house on a pond.
- **Evening:** Ride to the top of the Skytree at sunset, then eat monjayaki in Tsukishima, a short subway hop away.

## Day 2: shrines, fashion and neon
- **Morning:** The forest around Meiji Shrine is quiet early; look for the wall of sake barrels donated by brewers.
- **Afternoon:** Cross into Harajuku for Takeshita street's crepes, then stroll Omotesando's architecture toward Aoyama.
- **Evening:** Watch the scramble at Shibuya crossing from the Shibuya Sky deck and finish in the tiny bars of Nonbei Yokocho.

## Day 3: markets, museums and gadgets
- **Morning:** Breakfast on tamagoyaki and fresh tuna at the Tsukiji outer market, which opens around seven.
- **Afternoon:** Spend a few hours in Ueno Park; the Tokyo National Museum holds Japan's largest collection of samurai armour.
- **Evening:** Browse retro game shops in Akihabara, then take the Yamanote line to Shinjuku for yakitori in Omoide Yokocho.

## Practical tips
Buy a Suica card on arrival; it works on every train, bus and most convenience stores. A 72-hour subway pass costs
about 1,500 yen and pays for itself by the second day. Many museums close on Mondays, so check opening hours before you
go. Trains stop running shortly after midnight, and taxis are expensive, so plan the last ride home."""


def test_code_and_sql_are_not_punished():
    code = heuristic_score(CODE_PROMPT, CODE)
    sql = heuristic_score(SQL_PROMPT, SQL)
    prose = heuristic_score(EXPLAIN, GOOD)
    assert code.features["vocabulary_diversity"] is None  # code repeats identifiers by nature
    assert sql.features["vocabulary_diversity"] is None
    assert code.features["structure"] == 1.0 and sql.features["structure"] == 1.0
    assert code.features["length"] == 1.0 and sql.features["length"] == 1.0
    assert code.score >= 90 and sql.score >= 90 and prose.score >= 90


def test_code_with_an_unclosed_fence_or_brackets_loses_structure():
    assert heuristic_score(CODE_PROMPT, CODE.removesuffix("```")).features["structure"] < 1.0
    assert heuristic_score(SQL_PROMPT, SQL.replace("SUM(amount)", "SUM(amount")).features["structure"] < 1.0


def test_long_form_is_not_punished_for_its_length():
    whole = heuristic_score(TOKYO_PROMPT, TOKYO)
    first_day = heuristic_score(TOKYO_PROMPT, TOKYO.split("## Day 2")[0].strip())
    assert len(TOKYO.split()) > 3 * len(TOKYO.split("## Day 2")[0].split())
    assert whole.features["length"] == 1.0
    assert whole.features["vocabulary_diversity"] >= 0.9
    assert whole.score >= first_day.score - 1.0
    assert whole.score >= 85


def test_decimals_and_abbreviations_do_not_end_sentences():
    text = "The model used 3.5 Wh per answer, e.g. about 0.25 mWh per token. Dr. Smith measured it twice."
    assert _sentences(text) == [
        "The model used 3.5 Wh per answer, e.g. about 0.25 mWh per token.",
        "Dr. Smith measured it twice.",
    ]


def test_padding_lowers_the_score():
    padded = GOOD + " " + " ".join(["Quantum computing is a very interesting and important topic."] * 8)
    plain, worse = heuristic_score(EXPLAIN, GOOD), heuristic_score(EXPLAIN, padded)
    assert worse.score < plain.score - 10
    assert worse.features["structure"] < plain.features["structure"]
    assert worse.features["vocabulary_diversity"] < plain.features["vocabulary_diversity"]


def test_a_cut_off_answer_is_less_complete():
    cut = GOOD[: GOOD.index("so error correction") - 1]
    assert heuristic_score(EXPLAIN, cut).features["completeness"] < heuristic_score(EXPLAIN, GOOD).features["completeness"]


def test_off_topic_is_less_complete():
    off = ("Paris is the capital of France. It has museums, cafes and old bridges over the Seine, and millions of "
           "visitors climb the Eiffel Tower every year.")
    assert heuristic_score(EXPLAIN, off).features["completeness"] < 0.5


def test_short_answers_to_short_questions_are_fine():
    result = heuristic_score("What is 2+2?", "4.")
    assert result.score == 100.0
    assert result.features["vocabulary_diversity"] is None and result.features["structure"] is None


def test_brevity_asked_for_is_respected():
    one = "Photosynthesis is how plants turn light, water and carbon dioxide into sugar and oxygen."
    prompt = "In one sentence, what is photosynthesis?"
    assert heuristic_score(prompt, one).features["length"] == 1.0
    assert heuristic_score(prompt, " ".join([one] * 10)).features["length"] < 0.5


def test_an_empty_answer_scores_zero():
    assert heuristic_score(EXPLAIN, "").score == 0.0
    assert heuristic_score(EXPLAIN, "   \n ").score == 0.0


@given(st.text(max_size=600), st.text(max_size=100))
def test_any_text_scores_between_0_and_100_and_the_same_every_time(answer, prompt):
    first, second = heuristic_score(prompt, answer), heuristic_score(prompt, answer)
    assert 0.0 <= first.score <= 100.0
    assert first == second
    assert all(v is None or 0.0 <= v <= 1.0 for v in first.features.values())


# -- degenerate answers: echoes, loops, non-language score 20 or less, with the reason ---------------

def _explanation():
    from envirollm_core.benchmark.presets import get_preset

    return get_preset("explanation")


def test_an_echo_of_the_prompt_with_noise_scores_20_or_less():
    preset = _explanation()
    echo = f"{preset.prompt} mendatang / model / {preset.prompt}"  # what the base model answered (issue 11)
    result = heuristic_score(preset.prompt, echo)
    assert result.score <= 20 and any(flag.startswith("echo:") for flag in result.flags)


def test_a_repetition_loop_scores_20_or_less():
    preset = _explanation()
    loop = "Quantum computers use qubits. " + "The qubit is a qubit and the qubit is a qubit. " * 12
    result = heuristic_score(preset.prompt, loop)
    assert result.score <= 20 and any(flag.startswith("loop:") for flag in result.flags)


def test_text_that_is_not_language_scores_20_or_less():
    preset = _explanation()
    stray = "Qubits <unused12> / | ### <unused3> ::: // xqzt brrrr wvvvvr / | # ~~ Quantum"
    mixed = "Квантовые компьютеры используют кубиты. 量子计算机使用量子比特 и так далее, это очень интересно."
    for answer in (stray, mixed):
        result = heuristic_score(preset.prompt, answer)
        assert result.score <= 20 and any(flag.startswith("not language:") for flag in result.flags), answer


def test_right_plain_answers_keep_a_high_score_and_no_flag():
    from envirollm_core.quality.canaries import QUESTION, RIGHT

    preset = _explanation()
    for prompt, answer in ((QUESTION, RIGHT), (preset.prompt, preset.reference)):
        result = heuristic_score(prompt, answer)
        assert result.score >= 70 and not result.flags, (answer, result)
    assert not heuristic_score("Traduis en français : the cat is black", "Le chat noir dort sur le canapé depuis "
                               "ce matin, et il ne veut pas bouger.").flags  # accents are the prompt's own script
    restating = ("Quantum computing works by using qubits. A qubit can be in a superposition of 0 and 1, and "
                 "entanglement links qubits together, which is why quantum computers could solve some problems "
                 "faster than classical computers, such as factoring large numbers.")
    assert not heuristic_score(preset.prompt, restating).flags  # taking up the prompt's terms is not an echo
