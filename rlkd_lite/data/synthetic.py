"""Offline GSM8K-style word problems, generated deterministically from a seed.

Machines without network still need multi-step arithmetic problems with worked solutions, so
this module writes its own (written from scratch, not templated on GSM8K or reasoning-gym).
Each problem comes from one of several families (shopping, wages, travel, machine rates,
sharing, ages, discounts, tips, unit conversions, farm totals, stock, savings) and takes 2-6
steps. Every number in a solution is computed by `_Solution.calc`, which also writes the
GSM8K calculator annotation (`12*3 = <<12*3=36>>36`), so the arithmetic is right by
construction, and records the gold step (meta, query, answer).

Splits never overlap, for two independent reasons:
- the random stream is seeded with the split name and the seed, so train and test draw
  different streams;
- a problem's *calculation chain* (the sequence of annotated expressions, names and objects
  aside) is hashed, and the hash decides the one split the problem may belong to; a draw whose
  chain belongs to the other split is discarded. So a test problem is never a training
  problem, not even with the names and objects changed, whatever seeds the two sets use.
Within one call, questions are distinct, and `generate_problems(n)` is a prefix of
`generate_problems(n + k)` for the same seed and split.
"""
from __future__ import annotations

import hashlib
import operator
import random
from collections.abc import Callable
from dataclasses import dataclass

from rlkd_lite.errors import RlkdError
from rlkd_lite.structure.steps import Step

SPLITS = ("train", "test")


@dataclass(frozen=True)
class SyntheticProblem:
    """One generated problem with its GSM8K-style worked solution and gold steps."""

    id: str
    question: str
    answer: str
    reasoning: str
    """One computation per line with `<<a=b>>` annotations, then a final `#### N` line."""
    steps: tuple[Step, ...]
    family: str


def generate_problems(n: int, seed: int = 0, split: str = "train") -> list[SyntheticProblem]:
    """Generate `n` distinct problems of `split` ("train" or "test"), the same for the same seed.

    Ids are `syn-<split>-<index>`; see the module docstring for why splits never overlap.
    """
    if split not in SPLITS:
        raise RlkdError(f"unknown split {split!r}; expected one of: {', '.join(SPLITS)}")
    if n < 0:
        raise RlkdError(f"number of problems must be >= 0, got {n}")
    # A string seed goes through SHA-512 in `random`, so the stream is the same on every run
    # and platform (unlike hash() of a string, which changes per process).
    rng = random.Random(f"rlkd-lite synthetic {split} {seed}")
    problems: list[SyntheticProblem] = []
    questions: set[str] = set()
    while len(problems) < n:
        family = rng.choice(_FAMILIES)
        solution = _Solution()
        question = family(rng, solution)
        if _split_of(solution.expressions) != split or question in questions:
            continue
        questions.add(question)
        answer = solution.steps[-1].answer
        problems.append(SyntheticProblem(
            id=f"syn-{split}-{len(problems):06d}", question=question, answer=answer,
            reasoning="\n".join(solution.lines) + f"\n#### {answer}",
            steps=tuple(solution.steps), family=family.__name__.lstrip("_")))
    return problems


def _split_of(expressions: list[str]) -> str:
    """The one split a calculation chain may appear in, decided by a stable hash of the chain."""
    digest = hashlib.blake2b("|".join(expressions).encode(), digest_size=1).digest()
    return SPLITS[digest[0] % len(SPLITS)]


# ---------------------------------------------------------------------------------------------
# The worked-solution builder

CALC = "{calc}"
"""Marks where a solution line shows its computation, e.g. `12*3 = <<12*3=36>>36`."""


def _exact_div(a: int, b: int) -> int:
    quotient, remainder = divmod(a, b)
    if remainder:
        raise ArithmeticError(f"generator bug: {a}/{b} is not a whole number")
    return quotient


_OPERATORS: dict[str, Callable[[int, int], int]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": _exact_div}


class _Solution:
    """Collects a worked solution line by line, with the gold step of each line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.steps: list[Step] = []
        self.expressions: list[str] = []

    def calc(self, *terms: int | str, line: str, meta: str, query: str) -> int:
        """Compute `terms` (number, operator, number, ...), write `line`, record the step.

        `line` contains CALC where the annotated computation goes. Operators of one expression
        are all additive or all multiplicative, so left-to-right evaluation here means what
        the annotation means under the usual precedence.
        """
        operators = set(terms[1::2])
        if not (operators <= {"+", "-"} or operators <= {"*", "/"}):
            raise ArithmeticError(f"generator bug: mixed precedence in {terms}")
        value = terms[0]
        for symbol, operand in zip(terms[1::2], terms[2::2]):
            value = _OPERATORS[symbol](value, operand)
        if value < 0:
            raise ArithmeticError(f"generator bug: negative result of {terms}")
        expression = "".join(map(str, terms))
        self.expressions.append(expression)
        self.lines.append(line.replace(CALC, f"{expression} = <<{expression}={value}>>{value}"))
        self.steps.append(Step(meta=meta, query=query, answer=str(value)))
        return value


# ---------------------------------------------------------------------------------------------
# Vocabulary

@dataclass(frozen=True)
class _Person:
    name: str
    subject: str
    object: str
    possessive: str

    @property
    def Subject(self) -> str:  # noqa: N802 - reads like the capitalised word it returns
        return self.subject.capitalize()


_NAMES_SHE = ("Ava", "Maya", "Noor", "Priya", "Sofia", "Amara", "Hana", "Lucia", "Zoe", "Ingrid",
              "Fatima", "Mei", "Chloe", "Leila", "Rosa", "Yara", "Elena", "Aiko", "Nadia", "Tess")
_NAMES_HE = ("Liam", "Mateo", "Kenji", "Omar", "Ravi", "Tomas", "Elijah", "Jonas", "Kwame",
             "Diego", "Felix", "Arjun", "Samuel", "Hugo", "Malik", "Bruno", "Idris", "Oscar",
             "Pavel", "Theo")
_PEOPLE = (tuple(_Person(name, "she", "her", "her") for name in _NAMES_SHE)
           + tuple(_Person(name, "he", "him", "his") for name in _NAMES_HE))


def _times(m: int) -> str:
    return "twice" if m == 2 else f"{m} times"


def _and_join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _bill_for(amount: int) -> int:
    """The smallest usual banknote that pays `amount` with change left over."""
    return next(bill for bill in (20, 50, 100, 200, 500, 1000) if bill > amount)


# ---------------------------------------------------------------------------------------------
# Problem families: each draws its numbers, fills `solution` and returns the question text.

_SHOPS = {
    "stationery shop": ("notebooks", "pens", "folders", "pencil cases", "rulers", "erasers"),
    "garden center": ("flower pots", "bags of soil", "packets of seeds", "watering cans"),
    "bakery": ("muffins", "loaves of bread", "croissants", "fruit tarts", "bagels"),
    "toy store": ("puzzles", "yo-yos", "kites", "board games", "toy cars"),
    "hardware store": ("hammers", "boxes of nails", "paintbrushes", "rolls of tape"),
}


def _shopping(rng: random.Random, solution: _Solution) -> str:
    person = rng.choice(_PEOPLE)
    shop = rng.choice(tuple(_SHOPS))
    items = rng.sample(_SHOPS[shop], rng.randint(2, 3))
    bought = [(item, rng.randint(2, 9), rng.randint(1, 15)) for item in items]
    costs = []
    for index, (item, count, price) in enumerate(bought):
        meta = (f"The total is made of what each kind of item costs, so start with the {item}."
                if index == 0 else f"Next, work out what the {item} cost.")
        costs.append(solution.calc(
            count, "*", price, line=f"The {item} cost {CALC} dollars.", meta=meta,
            query=f"How much do {count} {item} at ${price} each cost?"))
    sum_terms = [term for cost in costs for term in ("+", cost)][1:]  # cost1, "+", cost2, ...
    total = solution.calc(
        *sum_terms, line=f"{person.name} spends {CALC} dollars in all.",
        meta="Add up the costs of the different items to get the total spent.",
        query=f"What is the sum of {_and_join([f'${cost}' for cost in costs])}?")
    opening = rng.choice((f"{person.name} goes to the {shop} and buys",
                          f"At the {shop}, {person.name} buys",
                          f"{person.name} stops at the {shop}. {person.Subject} buys"))
    purchases = _and_join([f"{count} {item} at ${price} each" for item, count, price in bought])
    if rng.random() < 0.5:
        return f"{opening} {purchases}. " + rng.choice((
            f"How much does {person.subject} spend in all?",
            f"How much money does {person.subject} spend altogether?"))
    bill = _bill_for(total)
    solution.calc(bill, "-", total, line=f"{person.Subject} gets {CALC} dollars back in change.",
                  meta="The change is what is left of the bill after paying for everything.",
                  query=f"How much change is left from a ${bill} bill after spending ${total}?")
    return (f"{opening} {purchases}. {person.Subject} pays with a ${bill} bill. "
            f"How much change does {person.subject} get back?")


_JOBS = ("tutor", "dog walker", "lifeguard", "cashier", "gardener", "babysitter", "barista")


def _wages(rng: random.Random, solution: _Solution) -> str:
    person = rng.choice(_PEOPLE)
    rate, hours, days, weeks = (rng.randint(8, 25), rng.randint(2, 8), rng.randint(2, 6),
                                rng.randint(1, 4))
    bonus = rng.randrange(20, 101, 10) if rng.random() < 1 / 3 else 0
    period = "a week" if weeks == 1 else f"{weeks} weeks"
    daily = solution.calc(
        rate, "*", hours, line=f"{person.name} earns {CALC} dollars a day.",
        meta="Pay builds up hour by hour, so first find one day's pay.",
        query=f"How much is earned in a day of {hours} hours at ${rate} an hour?")
    earned = solution.calc(
        daily, "*", days, line=f"In a week {person.subject} earns {CALC} dollars.",
        meta="A week is several working days, so scale the daily pay up to a week.",
        query=f"How much is earned in a week of {days} days at ${daily} a day?")
    if weeks > 1:
        earned = solution.calc(
            earned, "*", weeks, line=f"In {weeks} weeks {person.subject} earns {CALC} dollars.",
            meta="The question covers more than one week, so multiply by the number of weeks.",
            query=f"How much is earned in {weeks} weeks at ${earned} a week?")
    question = (f"{person.name} works as a {rng.choice(_JOBS)} and earns ${rate} an hour. "
                f"{person.Subject} works {hours} hours a day, {days} days a week.")
    if bonus:
        solution.calc(earned, "+", bonus,
                      line=f"With the bonus {person.subject} gets {CALC} dollars.",
                      meta="The bonus comes on top of the wages, so add it.",
                      query=f"What is ${earned} plus a ${bonus} bonus?")
        question += f" At the end of {period} {person.subject} also gets a ${bonus} bonus."
    return question + f" How much does {person.subject} earn in {period}?"


# vehicle, unit, slowest and fastest speed
_VEHICLES = (("train", "kilometers", 60, 120), ("bus", "miles", 30, 65),
             ("cyclist", "kilometers", 10, 25), ("truck", "miles", 40, 75),
             ("ferry", "kilometers", 15, 35), ("delivery van", "miles", 25, 60))


def _travel(rng: random.Random, solution: _Solution) -> str:
    vehicle, unit, slowest, fastest = rng.choice(_VEHICLES)
    speed1, speed2 = rng.sample(range(slowest, fastest + 1, 5), 2)
    hours1, hours2 = rng.randint(2, 5), rng.randint(2, 4)
    leg1 = solution.calc(
        speed1, "*", hours1, line=f"In the first part it covers {CALC} {unit}.",
        meta="The trip has two parts at different speeds, so find the first part's distance.",
        query=f"How far does the {vehicle} go in {hours1} hours at {speed1} {unit} per hour?")
    leg2 = solution.calc(
        speed2, "*", hours2, line=f"In the second part it covers {CALC} {unit}.",
        meta="Then find the distance covered at the second speed.",
        query=f"How far does the {vehicle} go in {hours2} hours at {speed2} {unit} per hour?")
    total = solution.calc(
        leg1, "+", leg2, line=f"Altogether it travels {CALC} {unit}.",
        meta="The whole distance is the two parts together.",
        query=f"What is {leg1} {unit} plus {leg2} {unit}?")
    question = (f"A {vehicle} travels at {speed1} {unit} per hour for {hours1} hours, then at "
                f"{speed2} {unit} per hour for another {hours2} hours.")
    if rng.random() < 0.5:
        return question + rng.choice((f" How many {unit} does it travel in total?",
                                      f" How far does it go altogether, in {unit}?"))
    trip = total + rng.randrange(10, 101, 5)
    solution.calc(trip, "-", total, line=f"It still has {CALC} {unit} to go.",
                  meta="What is still to go is the trip length minus the distance covered.",
                  query=f"How much of a {trip}-{unit[:-1]} trip is left after {total} {unit}?")
    return question + (f" Its destination is {trip} {unit} from the start. How many more "
                       f"{unit} does it have to travel?")


# machine, verb (3rd person), verb (base), product, pack
_MACHINES = (("bottling machine", "fills", "fill", "bottles", "crate"),
             ("printer", "prints", "print", "pages", "stack"),
             ("factory robot", "assembles", "assemble", "toy cars", "box"),
             ("juice press", "fills", "fill", "cartons", "tray"),
             ("sewing machine", "stitches", "stitch", "patches", "bag"))


def _machine(rng: random.Random, solution: _Solution) -> str:
    machine, verbs, verb, product, pack = rng.choice(_MACHINES)
    rate, hours = rng.randint(3, 30), rng.randint(2, 9)
    minutes = solution.calc(
        hours, "*", 60, line=f"There are {CALC} minutes in {hours} hours.",
        meta="The rate is per minute but the time is in hours, so convert the time to minutes.",
        query=f"How many minutes are in {hours} hours?")
    made = solution.calc(
        rate, "*", minutes, line=f"The {machine} {verbs} {CALC} {product}.",
        meta="Now apply the per-minute rate to the whole running time.",
        query=f"How many {product} are made in {minutes} minutes at {rate} per minute?")
    opening = f"A {machine} {verbs} {rate} {product} every minute."
    if rng.random() < 0.5:
        return opening + f" How many {product} does it {verb} in {hours} hours?"
    # Divisors of 60, so any whole number of hours fills whole packs.
    size = rng.choice((4, 5, 6, 10, 12, 15, 20, 30))
    solution.calc(made, "/", size, line=f"That fills {CALC} {pack}s.",
                  meta=f"The {product} are packed in equal groups, so divide by the group size.",
                  query=f"How many {pack}s of {size} can be filled with {made} {product}?")
    return (opening + f" It runs for {hours} hours, and the {product} are packed {size} to a "
            f"{pack}. How many {pack}s are filled?")


_TREATS = ("cookies", "cupcakes", "brownies", "dumplings", "granola bars", "pancakes")
_RECIPIENTS = (("friend", "friends"), ("classmate", "classmates"), ("neighbor", "neighbors"),
               ("teammate", "teammates"), ("cousin", "cousins"))


def _sharing(rng: random.Random, solution: _Solution) -> str:
    person = rng.choice(_PEOPLE)
    treat = rng.choice(_TREATS)
    recipient, recipients = rng.choice(_RECIPIENTS)
    trays, per_tray, people = rng.randint(3, 6), rng.randint(10, 24), rng.randint(3, 8)
    made = trays * per_tray
    # What is kept back must leave a multiple of `people` to share; at least 2 so it can be
    # split into "eats" and "gives away" below; at most a third of the batch.
    kept_options = [k for k in range(made % people, made // 3 + 1, people) if k >= 2]
    kept = rng.choice(kept_options)
    total = solution.calc(
        trays, "*", per_tray, line=f"{person.name} bakes {CALC} {treat}.",
        meta=f"Start from how many {treat} there are in all.",
        query=f"How many {treat} are in {trays} trays of {per_tray}?")
    question = f"{person.name} bakes {trays} trays of {per_tray} {treat}."
    if rng.random() < 0.5:
        question += f" {person.Subject} keeps {kept} for {person.possessive} family"
    else:
        eaten = rng.randint(1, kept - 1)
        solution.calc(eaten, "+", kept - eaten,
                      line=f"{person.Subject} does not share {CALC} {treat}.",
                      meta=f"Before sharing, count the {treat} that do not get shared.",
                      query=f"What is {eaten} plus {kept - eaten}?")
        question += (f" {person.Subject} eats {eaten}, gives {kept - eaten} to "
                     f"{person.possessive} teacher")
    rest = solution.calc(
        total, "-", kept, line=f"That leaves {CALC} {treat} to share.",
        meta="Only what is left after that gets shared.",
        query=f"How many of {total} {treat} are left after taking away {kept}?")
    solution.calc(
        rest, "/", people, line=f"Each {recipient} gets {CALC} {treat}.",
        meta=f"Sharing equally means dividing by the number of {recipients}.",
        query=f"How many does each get when {rest} {treat} are shared equally by {people}?")
    return (question + f" and shares the rest equally among {people} {recipients}. "
            f"How many {treat} does each {recipient} get?")


def _ages(rng: random.Random, solution: _Solution) -> str:
    first, second, third = rng.sample(_PEOPLE, 3)
    age1, multiple = rng.randint(4, 15), rng.randint(2, 4)
    age2 = solution.calc(
        age1, "*", multiple, line=f"{second.name} is {CALC} years old.",
        meta=f"{second.name}'s age is given through {first.name}'s, so work it out first.",
        query=f"How old is someone {_times(multiple)} as old as a {age1}-year-old?")
    younger = rng.randint(2, min(12, age2 - 1))
    age3 = solution.calc(
        age2, "-", younger, line=f"{third.name} is {CALC} years old.",
        meta=f"{third.name}'s age depends on {second.name}'s, which is now known.",
        query=f"How old is someone {younger} years younger than a {age2}-year-old?")
    question = (f"{first.name} is {age1} years old. {second.name} is {_times(multiple)} as old "
                f"as {first.name}, and {third.name} is {younger} years younger than "
                f"{second.name}.")
    years = rng.randint(2, 10)
    variant = rng.randrange(3)
    if variant == 0:
        solution.calc(age3, "+", years, line=f"{third.name} will be {CALC} years old.",
                      meta=f"{third.name} gets a year older every year, so add the years to come.",
                      query=f"How old will a {age3}-year-old be in {years} years?")
        return question + f" How old will {third.name} be in {years} years?"
    total = solution.calc(
        age1, "+", age2, "+", age3, line=f"Together they are {CALC} years old now.",
        meta="With all three ages known, add them up.",
        query=f"What is {age1} + {age2} + {age3}?")
    if variant == 1:
        return question + " What is the sum of their ages?"
    growth = solution.calc(
        3, "*", years, line=f"In {years} years their total grows by {CALC} years.",
        meta="Each of the three gets older by the same amount, so find how much the sum grows.",
        query=f"By how much does a sum of three people's ages grow in {years} years?")
    solution.calc(total, "+", growth, line=f"In {years} years their ages will add up to {CALC}.",
                  meta="Add that growth to today's total.",
                  query=f"What is {total} + {growth}?")
    return question + f" What will the sum of their ages be in {years} years?"


_SALE_ITEMS = (("jacket", "jackets", "clothing store"),
               ("pair of boots", "pairs of boots", "shoe shop"),
               ("backpack", "backpacks", "outdoor shop"), ("lamp", "lamps", "furniture store"),
               ("blender", "blenders", "kitchen store"), ("helmet", "helmets", "bike shop"))


def _discount(rng: random.Random, solution: _Solution) -> str:
    person = rng.choice(_PEOPLE)
    item, items, shop = rng.choice(_SALE_ITEMS)
    # A price in twenties makes any percentage in fives a whole number of dollars.
    price, percent, count = (20 * rng.randint(1, 12), rng.choice((10, 15, 20, 25, 30, 40, 50)),
                             rng.randint(1, 4))
    discount = solution.calc(
        price, "*", percent, "/", 100, line=f"The discount is {CALC} dollars.",
        meta="A percentage off is taken from the original price, so find the discount first.",
        query=f"What is {percent}% of ${price}?")
    paid = solution.calc(
        price, "-", discount, line=f"On sale one {item} costs {CALC} dollars.",
        meta="The sale price is the original price less the discount.",
        query=f"What is ${price} minus ${discount}?")
    if count > 1:
        paid = solution.calc(
            paid, "*", count, line=f"{person.name} pays {CALC} dollars.",
            meta="More than one is bought, so multiply the sale price by how many.",
            query=f"How much do {count} {items} cost at ${paid} each?")
    what = f"a {item}" if count == 1 else f"{count} {items}"
    question = (f"A {item} normally costs ${price}. This week the {shop} takes {percent}% off "
                f"the price. {person.name} buys {what}.")
    if rng.random() < 0.5:
        return question + f" How much does {person.subject} pay?"
    bill = _bill_for(paid)
    solution.calc(bill, "-", paid, line=f"{person.Subject} gets {CALC} dollars in change.",
                  meta="The change is what is left of the bill after paying.",
                  query=f"How much change is left from a ${bill} bill after paying ${paid}?")
    return question + (f" {person.Subject} pays with a ${bill} bill. How much change does "
                       f"{person.subject} get?")


def _tip(rng: random.Random, solution: _Solution) -> str:
    people, percent = rng.randint(2, 8), rng.choice((10, 15, 20, 25))
    group = rng.choice(("friends", "coworkers", "cousins", "teammates", "classmates",
                        "neighbors"))
    meal = rng.choice(("dinner", "lunch", "brunch", "a pizza night", "a birthday meal"))
    # bill = 20 * people * j makes both the tip and each person's share whole numbers.
    bill = 20 * people * rng.randint(1, 10)
    tip = solution.calc(bill, "*", percent, "/", 100, line=f"The tip is {CALC} dollars.",
                        meta="The tip is a percentage of the bill, so compute it first.",
                        query=f"What is {percent}% of ${bill}?")
    total = solution.calc(bill, "+", tip, line=f"With the tip the total is {CALC} dollars.",
                          meta="The bill and the tip together are what gets split.",
                          query=f"What is ${bill} plus ${tip}?")
    solution.calc(total, "/", people, line=f"Each person pays {CALC} dollars.",
                  meta="Splitting equally means dividing by the number of people.",
                  query=f"What is ${total} split equally among {people} people?")
    return (f"{people} {group} go out for {meal}. The bill comes to ${bill}, and they add a "
            f"{percent}% tip. If they split the total equally, how much does each person pay?")


@dataclass(frozen=True)
class _Conversion:
    """A unit-conversion setting; `{...}` fields are filled from the drawn numbers."""

    setup: str
    ask: str
    ask_left: str
    left_line: str
    big_unit: str
    small_unit: str
    factor: int
    sizes: tuple[int, ...]
    """Portion sizes in the small unit; each divides `factor`, so portions come out whole."""
    portions: str


_CONVERSIONS = (
    _Conversion(
        "{name} has {amount} meters of ribbon and cuts it into pieces {size} centimeters long.",
        "How many pieces does {subject} get?",
        "{Subject} uses {used} pieces to wrap presents. How many pieces are left?",
        "There are {calc} pieces left.", "meters", "centimeters", 100, (10, 20, 25, 50),
        "pieces"),
    _Conversion(
        "A baker has a {amount}-kilogram sack of flour. Each loaf needs {size} grams of flour.",
        "How many loaves can the baker make?",
        "The baker has already made {used} loaves from the sack. How many more can be made?",
        "The baker can make {calc} more loaves.", "kilograms", "grams", 1000,
        (100, 125, 200, 250, 500), "loaves"),
    _Conversion(
        "A water cooler holds {amount} liters, and each cup holds {size} milliliters.",
        "How many cups can be filled from the cooler?",
        "{used} cups have been poured so far. How many more cups can be filled?",
        "{calc} more cups can be filled.", "liters", "milliliters", 1000, (200, 250, 500),
        "cups"),
    _Conversion(
        "{name} buys {amount} dozen eggs. Each omelette uses {size} eggs.",
        "How many omelettes can {subject} make?",
        "{Subject} has already made {used} omelettes. How many more can {subject} make?",
        "{Subject} can make {calc} more omelettes.", "dozen", "eggs", 12, (2, 3, 4, 6),
        "omelettes"),
)


def _conversion(rng: random.Random, solution: _Solution) -> str:
    setting = rng.choice(_CONVERSIONS)
    person = rng.choice(_PEOPLE)
    amount, size = rng.randint(2, 12), rng.choice(setting.sizes)
    small, portions = setting.small_unit, setting.portions
    converted = solution.calc(
        amount, "*", setting.factor, line=f"{amount} {setting.big_unit} is {CALC} {small}.",
        meta="The amounts are in different units, so convert to the smaller unit first.",
        query=f"How many {small} are in {amount} {setting.big_unit}?")
    count = solution.calc(
        converted, "/", size, line=f"That makes {CALC} {portions}.",
        meta="Now divide the whole amount into portions of the given size.",
        query=f"How many {portions} of {size} {small} each can be made from {converted} {small}?")
    # `calc` is kept as a placeholder here, for `solution.calc` to fill in.
    fields = {"name": person.name, "subject": person.subject, "Subject": person.Subject,
              "amount": amount, "size": size, "calc": CALC}
    if rng.random() < 0.5:
        return f"{setting.setup} {setting.ask}".format(**fields)
    fields["used"] = used = rng.randint(1, count - 1)
    solution.calc(count, "-", used, line=setting.left_line.format(**fields),
                  meta="Some are already used, so take those away.",
                  query=f"What is {count} minus {used}?")
    return f"{setting.setup} {setting.ask_left}".format(**fields)


_FOUR_LEGGED = ("cows", "sheep", "goats", "pigs", "horses", "alpacas")
_TWO_LEGGED = ("chickens", "ducks", "geese", "turkeys")


def _farm(rng: random.Random, solution: _Solution) -> str:
    person = rng.choice(_PEOPLE)
    kind1, kind2 = rng.sample(_FOUR_LEGGED, 2)
    birds = rng.choice(_TWO_LEGGED)
    count1, multiple = rng.randint(5, 30), rng.randint(2, 4)
    count2 = solution.calc(
        count1, "*", multiple, line=f"There are {CALC} {kind2}.",
        meta=f"The number of {kind2} is given by comparison with the {kind1}, so find it first.",
        query=f"How many is {_times(multiple)} as many as {count1}?")
    fewer = rng.randint(1, count2 - 1)
    bird_count = solution.calc(
        count2, "-", fewer, line=f"There are {CALC} {birds}.",
        meta=f"The {birds} are counted against the {kind2}, which are now known.",
        query=f"What is {fewer} fewer than {count2}?")
    question = (f"On {person.name}'s farm there are {count1} {kind1}. There are "
                f"{_times(multiple)} as many {kind2} as {kind1}, and {fewer} fewer {birds} "
                f"than {kind2}.")
    if rng.random() < 0.5:
        solution.calc(count1, "+", count2, "+", bird_count,
                      line=f"There are {CALC} animals on the farm.",
                      meta="Add up the three kinds of animals.",
                      query=f"What is {count1} + {count2} + {bird_count}?")
        return question + " How many animals are on the farm?"
    four_legged = solution.calc(
        count1, "+", count2, line=f"There are {CALC} four-legged animals.",
        meta=f"The {kind1} and the {kind2} both have four legs, so count them together.",
        query=f"What is {count1} + {count2}?")
    legs4 = solution.calc(
        four_legged, "*", 4, line=f"They have {CALC} legs.",
        meta="Each of these animals has four legs.",
        query=f"How many legs do {four_legged} four-legged animals have?")
    legs2 = solution.calc(
        bird_count, "*", 2, line=f"The {birds} have {CALC} legs.",
        meta=f"The {birds} have two legs each.",
        query=f"How many legs do {bird_count} {birds} have?")
    solution.calc(legs4, "+", legs2, line=f"Altogether there are {CALC} legs.",
                  meta="Add the legs of both groups.",
                  query=f"What is {legs4} + {legs2}?")
    return question + " How many legs do the animals have altogether?"


# store, container, goods
_STOCK = (("bookstore", "boxes", "notebooks"), ("florist", "buckets", "roses"),
          ("grocery store", "crates", "apples"), ("sports shop", "cartons", "tennis balls"),
          ("pet shop", "bags", "dog treats"), ("music shop", "boxes", "guitar strings"))


def _stock(rng: random.Random, solution: _Solution) -> str:
    store, container, goods = rng.choice(_STOCK)
    containers, per_container, multiple = rng.randint(4, 20), rng.randint(10, 50), rng.randint(2, 3)
    # Monday and Tuesday together never sell more than arrived.
    monday = rng.randint(5, min(40, containers * per_container // (multiple + 1)))
    question = (f"A {store} receives {containers} {container} with {per_container} {goods} in "
                f"each. On Monday it sells {monday} {goods}, and on Tuesday it sells "
                f"{_times(multiple)} as many as on Monday.")
    asks_left = rng.random() < 0.5
    if asks_left:
        stocked = solution.calc(
            containers, "*", per_container, line=f"The {store} has {CALC} {goods}.",
            meta=f"Start from how many {goods} arrived in all.",
            query=f"How many {goods} are in {containers} {container} of {per_container}?")
    tuesday = solution.calc(
        monday, "*", multiple, line=f"On Tuesday it sells {CALC} {goods}.",
        meta="Tuesday's sales are given through Monday's, so find them next.",
        query=f"How many is {_times(multiple)} as many as {monday}?")
    sold = solution.calc(
        monday, "+", tuesday, line=f"Over the two days it sells {CALC} {goods}.",
        meta="Both days' sales together are what left the shelves.",
        query=f"What is {monday} + {tuesday}?")
    if not asks_left:
        return question + f" How many {goods} does it sell over the two days?"
    solution.calc(stocked, "-", sold, line=f"There are {CALC} {goods} left.",
                  meta="What remains is the stock minus what was sold.",
                  query=f"What is {stocked} minus {sold}?")
    return question + f" How many {goods} are left?"


_GOALS = ("bike", "tablet", "guitar", "pair of skates", "telescope", "camera")
_RELATIVES = ("grandmother", "uncle", "aunt", "older brother", "grandfather")


def _savings(rng: random.Random, solution: _Solution) -> str:
    person = rng.choice(_PEOPLE)
    saved, weekly, weeks = rng.randint(10, 100), rng.randint(5, 25), rng.randint(2, 12)
    gift = rng.randrange(10, 61, 5) if rng.random() < 0.5 else 0
    price = saved + gift + weekly * weeks
    question = f"{person.name} is saving for a {rng.choice(_GOALS)} that costs ${price}. "
    question += f"{person.Subject} already has ${saved}"
    in_hand = saved
    if gift:
        relative = rng.choice(_RELATIVES)
        in_hand = solution.calc(saved, "+", gift, line=f"{person.Subject} has {CALC} dollars.",
                                meta="First count all the money already in hand.",
                                query=f"What is ${saved} plus ${gift}?")
        question += f", and {person.possessive} {relative} gives {person.object} ${gift}"
    needed = solution.calc(
        price, "-", in_hand, line=f"{person.Subject} still needs {CALC} dollars.",
        meta="What still has to be saved is the price minus the money in hand.",
        query=f"What is ${price} minus ${in_hand}?")
    solution.calc(needed, "/", weekly, line=f"It will take {CALC} weeks.",
                  meta="Each week adds the same amount, so divide what is needed by it.",
                  query=f"How many weeks of saving ${weekly} make ${needed}?")
    return question + (f". If {person.subject} saves ${weekly} a week, how many weeks will it "
                       f"take to have enough?")


_FAMILIES: tuple[Callable[[random.Random, _Solution], str], ...] = (
    _shopping, _wages, _travel, _machine, _sharing, _ages, _discount, _tip, _conversion, _farm,
    _stock, _savings)
