"""Synthetic card transactions with labelled frauds: the Fraud Detection Handbook's process.

Written from the description of the simulator of Le Borgne et al., "Reproducible Machine
Learning for Credit Card Fraud Detection - Practical Handbook" (3.2; see docs/SIMULATOR.md):
customers and terminals on a 100 x 100 grid, each customer spending at the terminals within
RADIUS of them, then three fraud scenarios laid over the genuine transactions.

Seed 0 (the default) uses the Handbook's own seeds and draw order: numpy's legacy Mersenne
Twister (RandomState) seeded 0 for the customer profiles, 1 for the terminals, the customer id
for each customer's spending (with Python's `random` seeded the same for the terminal choice),
and the day for each day's scenario draws. With the Handbook's sizes (5,000 customers, 10,000
terminals, 183 days) this reproduces the published data set: 1,754,155 transactions, 14,681
frauds (973 / 9,077 / 4,631 by scenario), 4,990 customers with transactions. Any other seed
keys every stream by (seed, stream, index): an independent data set from the same process.

The draws are the same numbers as those scalar calls but made in bulk: each customer's
uniform doubles are drawn as one block, and numpy's legacy algorithms (Poisson, polar-method
normals, uniforms) run on all customers' blocks at once, a step per draw (see _Lockstep;
tests/aegis_app/harness/test_simulator.py checks equality with RandomState's own calls);
terminal choices are drawn as vectors of the 32-bit words Python's `random` would use.
Transactions in the same second are numbered by (customer id, draw order); the Handbook's
unstable sort may have numbered those ties differently.
"""

from __future__ import annotations

import functools
import math
import random

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree
from tqdm import tqdm

from aegis_app.core.timerules import DAY

GRID = 100.0
RADIUS = 5.0  # a customer uses the terminals strictly closer than this
# Customer profiles: mean amount uniform on this range (std = mean / 2), and the mean number
# of transactions per day uniform on [0, MAX_TX_PER_DAY].
MEAN_AMOUNT_RANGE = (5.0, 100.0)
MAX_TX_PER_DAY = 4.0
# Time of day of a purchase: Normal around noon, truncated to int; kept only if 0 < t < DAY.
TIME_OF_DAY_MEAN, TIME_OF_DAY_STD = DAY / 2, 20_000.0
# Scenario 1: any amount above this is fraud.
S1_THRESHOLD = 220.0
# Scenario 2: terminals compromised per day, and for how many days from the draw (d .. d+27).
S2_TERMINALS_PER_DAY, S2_DAYS = 2, 28
# Scenario 3: cards compromised per day, for how many days (d .. d+13), and the spend multiplier
# applied to one third (rounded down) of their transactions in that window.
S3_CUSTOMERS_PER_DAY, S3_DAYS, S3_FACTOR = 3, 14, 5.0

# The seed whose streams are the Handbook's own; the largest seed numpy's legacy generator takes.
HANDBOOK_SEED = 0
MAX_SEED = 2**32 - 1

COLUMNS = (
    "TRANSACTION_ID",
    "TX_DATETIME",
    "CUSTOMER_ID",
    "TERMINAL_ID",
    "TX_AMOUNT",
    "TX_TIME_SECONDS",
    "TX_TIME_DAYS",
    "TX_FRAUD",
    "TX_FRAUD_SCENARIO",
)

# Stream names, for the keys of seeds other than HANDBOOK_SEED.
_CUSTOMERS, _TERMINALS, _SPENDING, _TERMINAL_CHOICE, _S2, _S3, _S3_PICK = range(7)
# The Handbook's seeds of its profile generators (the others are a customer id or a day).
_CUSTOMER_PROFILE_SEED, _TERMINAL_PROFILE_SEED = 0, 1


class RandomStreams:
    """The simulator's random streams: numpy's legacy generator (RandomState) for profiles,
    spending and scenario draws, Python's `random` for terminal choices and scenario 3 picks.

    With HANDBOOK_SEED each stream gets the Handbook's own seed (`index`: 0 or 1 for the
    profiles, the customer id, the day); with any other seed the key is (index, stream, seed).
    Building a RandomState costs about 0.3 ms and the simulator needs two streams per
    customer, so the per-customer ones reseed two reusable Mersenne Twisters instead.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    @functools.cached_property
    def _legacy(self) -> np.random.RandomState:
        return np.random.RandomState(np.random.MT19937())

    @functools.cached_property
    def _python_words(self) -> np.random.MT19937:
        return np.random.MT19937()

    @functools.cached_property
    def _python_seeder(self) -> np.random.RandomState:
        # Reseeding through a RandomState is the public way to seed an MT19937 like random.
        return np.random.RandomState(self._python_words)

    def _key(self, stream: int, index: int) -> list[int]:
        return [index] if self.seed == HANDBOOK_SEED else [index, stream, self.seed]

    def _legacy_seed(self, stream: int, index: int) -> int | list[int]:
        # The Handbook seeds RandomState with an int (not the same stream as the list [int]).
        return index if self.seed == HANDBOOK_SEED else self._key(stream, index)

    def legacy(self, stream: int, index: int) -> np.random.RandomState:
        """A new RandomState for the stream."""
        return np.random.RandomState(self._legacy_seed(stream, index))

    def reused_legacy(self, stream: int, index: int) -> np.random.RandomState:
        """The stream on the reusable RandomState: valid until the next call."""
        self._legacy.seed(self._legacy_seed(stream, index))
        return self._legacy

    def python(self, stream: int, index: int) -> random.Random:
        """Python's generator for the stream."""
        # random.seed(n) seeds Mersenne Twister with n's 32-bit words, least significant first.
        words = self._key(stream, index)
        return random.Random(sum(word << (32 * at) for at, word in enumerate(words)))

    def python_words(self, stream: int, index: int) -> np.random.MT19937:
        """The 32-bit words random.Random would draw for the stream: valid until the next call."""
        # A list seed is the same init_by_array seeding that random.seed(int) does.
        self._python_seeder.seed(self._key(stream, index))
        return self._python_words


def _check_arguments(customers: int, terminals: int, days: int, seed: int) -> None:
    for name, value in (("customers", customers), ("terminals", terminals), ("days", days)):
        if value < 0:
            raise ValueError(f"{name} must be 0 or more, got {value}")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be between 0 and {MAX_SEED}, got {seed}")


def customer_profiles(customers: int, seed: int = HANDBOOK_SEED) -> pd.DataFrame:
    """One row per customer: position, amount mean/std and mean transactions per day."""
    # The Handbook draws x, y, mean amount, transactions per day customer after customer: one
    # (customers, 4) array filled in row order is the same sequence of draws.
    low = [0.0, 0.0, MEAN_AMOUNT_RANGE[0], 0.0]
    high = [GRID, GRID, MEAN_AMOUNT_RANGE[1], MAX_TX_PER_DAY]
    rng = RandomStreams(seed).legacy(_CUSTOMERS, _CUSTOMER_PROFILE_SEED)
    draws = rng.uniform(low, high, size=(customers, 4))
    return pd.DataFrame(
        {
            "CUSTOMER_ID": np.arange(customers, dtype=np.int64),
            "x_customer_id": draws[:, 0],
            "y_customer_id": draws[:, 1],
            "mean_amount": draws[:, 2],
            "std_amount": draws[:, 2] / 2,
            "mean_nb_tx_per_day": draws[:, 3],
        }
    )


def terminal_profiles(terminals: int, seed: int = HANDBOOK_SEED) -> pd.DataFrame:
    """One row per terminal: its position."""
    rng = RandomStreams(seed).legacy(_TERMINALS, _TERMINAL_PROFILE_SEED)
    xy = rng.uniform(0, GRID, size=(terminals, 2))
    return pd.DataFrame(
        {
            "TERMINAL_ID": np.arange(terminals, dtype=np.int64),
            "x_terminal_id": xy[:, 0],
            "y_terminal_id": xy[:, 1],
        }
    )


def reachable_terminals(customers: pd.DataFrame, terminals: pd.DataFrame) -> list[np.ndarray]:
    """Per customer, the ids of the terminals at distance < RADIUS, ascending."""
    if terminals.empty:
        return [np.empty(0, dtype=np.int64) for _ in range(len(customers))]
    terminal_xy = terminals[["x_terminal_id", "y_terminal_id"]].to_numpy()
    customer_xy = customers[["x_customer_id", "y_customer_id"]].to_numpy()
    # The tree finds candidates with a margin; the strict test below is the Handbook's
    # sqrt(dx^2 + dy^2) < r, so a terminal on the boundary falls the same way.
    candidates = cKDTree(terminal_xy).query_ball_point(customer_xy, r=RADIUS * (1 + 1e-9))
    reachable = []
    for xy, hits in zip(customer_xy, candidates, strict=True):
        ids = np.sort(np.asarray(hits, dtype=np.int64))
        distance = np.sqrt(np.sum(np.square(xy - terminal_xy[ids]), axis=1))
        reachable.append(ids[distance < RADIUS])
    return reachable


# Uniforms a customer's spending takes per day on average: the Poisson count takes count + 1;
# a normal takes 1.27 (polar method: 2 per pair tried, 4 / pi pairs per 2 normals); a
# transaction takes a normal for its time and, when kept (97 %), one for its amount.
_UNIFORMS_PER_DAY, _UNIFORMS_PER_TRANSACTION = 1.0, 3.52
# Uniforms a customer past the last block can take a day in the padding (see _Lockstep): a
# Poisson count of at most 35 (0.75^35 < exp(-10)) plus five per transaction.
_PAD_PER_DAY = 220


class _Lockstep:
    """Every customer's spending draws, advanced together: one numpy step per draw for all.

    The Handbook makes about five million scalar RandomState calls (a microsecond each).
    Here each customer's legacy generator fills a block of its uniform doubles, and numpy's
    legacy algorithms run on all blocks at once: Poisson by multiplying uniforms until the
    product falls to exp(-mean) (numpy's method for means below 10); normals by the polar
    method, whose second value is kept for the customer's next normal; uniforms as
    low + (high - low) x u. The numbers are identical to the scalar calls (the tests compare
    them). A customer that needs more uniforms than its block reads past it into the next
    block (or the padding at the end); `overran` tells, and the caller redraws it.
    """

    def __init__(self, blocks: list[np.ndarray], days: int) -> None:
        # The padding: pairs (0.75, 0.75) are always accepted and products of 0.75 fall below
        # any threshold, so a customer that ran past the last block stays inside the array.
        padding = np.full(_PAD_PER_DAY * days + 64, 0.75)
        self.uniforms = np.concatenate([*blocks, padding])
        sizes = np.array([block.size for block in blocks], dtype=np.int64)
        self.ends = np.cumsum(sizes)
        self.position = self.ends - sizes  # the next uniform each customer reads
        # Polar method: the pair at (q, q + 1) is accepted when 0 < x1^2 + x2^2 < 1 with
        # x = 2u - 1, and a fresh normal takes the first accepted pair at its position or
        # after, in steps of two: next_pair[p] is that pair's start, per parity.
        self.x = 2.0 * self.uniforms - 1.0
        square = self.x * self.x
        radius2 = square[:-1] + square[1:]
        accepted = (radius2 < 1.0) & (radius2 != 0.0)
        # Past the last accepted pair there is none: an index past the end fails loudly.
        self.next_pair = np.full(self.uniforms.size, self.uniforms.size, dtype=np.int64)
        for parity in (0, 1):
            flags = accepted[parity::2]
            starts = np.append(np.flatnonzero(flags) * 2 + parity, self.uniforms.size)
            accepted_before = np.cumsum(flags) - flags
            self.next_pair[parity : parity + 2 * flags.size : 2] = starts[accepted_before]
        self.spare = np.zeros(len(blocks))
        self.has_spare = np.zeros(len(blocks), dtype=bool)

    def overran(self) -> np.ndarray:
        return self.position > self.ends

    def uniform(self, lanes: np.ndarray) -> np.ndarray:
        values = self.uniforms[self.position[lanes]]
        self.position[lanes] += 1
        return values

    def poisson(self, thresholds: np.ndarray) -> np.ndarray:
        """One draw per customer; thresholds = exp(-mean), means in (0, 10)."""
        every = np.arange(thresholds.size)
        product = self.uniform(every)
        count = np.zeros(thresholds.size, dtype=np.int64)
        going = np.flatnonzero(product > thresholds)
        while going.size:
            count[going] += 1
            product[going] *= self.uniform(going)
            going = going[product[going] > thresholds[going]]
        return count

    def standard_normal(self, lanes: np.ndarray) -> np.ndarray:
        values = np.empty(lanes.size)
        kept = self.has_spare[lanes]
        values[kept] = self.spare[lanes[kept]]
        self.has_spare[lanes[kept]] = False
        fresh = lanes[~kept]
        start = self.next_pair[self.position[fresh]]
        self.position[fresh] = start + 2
        x1, x2 = self.x[start], self.x[start + 1]
        radius2 = x1 * x1 + x2 * x2
        # math.log is the C library's log, as numpy's legacy code calls it; np.log may differ
        # in the last bit on some CPUs.
        log = np.fromiter(map(math.log, radius2.tolist()), dtype=np.float64, count=radius2.size)
        scale = np.sqrt(-2.0 * log / radius2)
        values[~kept] = scale * x2
        self.spare[fresh] = scale * x1
        self.has_spare[fresh] = True
        return values


def spending_draws(
    streams: RandomStreams,
    customer_ids: np.ndarray,
    mean_amounts: np.ndarray,
    mean_per_day: np.ndarray,
    days: int,
    slack: float = 1.15,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kept genuine transactions of the given customers: (customer id, seconds since
    start, unrounded amount), customer after customer, each in draw order.

    Per customer and day: a Poisson count; per transaction a time of day, dropped unless
    0 < t < DAY (then nothing else is drawn for it), else an amount, redrawn uniformly on
    [0, 2 x mean] if negative. The numbers are those of the RandomState calls poisson,
    normal, normal, uniform in that order on the customer's stream (_SPENDING).
    `slack` sizes the blocks of uniforms; a customer that needs more is redrawn with more.
    `progress` shows a bar over the days on stderr.
    """
    if not np.all((mean_per_day >= 0) & (mean_per_day < 10)):
        raise ValueError("mean transactions per day must be in [0, 10)")
    # numpy draws nothing for a Poisson mean of 0: such customers never transact.
    drawing = mean_per_day > 0
    customer_ids, mean_amounts, mean_per_day = (
        customer_ids[drawing],
        mean_amounts[drawing],
        mean_per_day[drawing],
    )
    expected = days * (_UNIFORMS_PER_DAY + _UNIFORMS_PER_TRANSACTION * mean_per_day)
    blocks = [
        streams.reused_legacy(_SPENDING, int(customer_id)).random_sample(int(size))
        for customer_id, size in zip(customer_ids, expected * slack + 64, strict=True)
    ]
    draws = _Lockstep(blocks, days)
    thresholds = np.array([math.exp(-mean) for mean in mean_per_day.tolist()])
    std_amounts = mean_amounts / 2
    lanes, seconds, amounts = [], [], []
    for day in tqdm(range(days), desc="days", disable=not progress):
        count = draws.poisson(thresholds)
        for nth in range(int(count.max(initial=0))):
            drawn = np.flatnonzero(count > nth)
            # astype truncates toward zero, as int() does in the Handbook.
            time_of_day = (
                TIME_OF_DAY_MEAN + TIME_OF_DAY_STD * draws.standard_normal(drawn)
            ).astype(np.int64)
            kept = (time_of_day > 0) & (time_of_day < DAY)
            buying = drawn[kept]
            amount = mean_amounts[buying] + std_amounts[buying] * draws.standard_normal(buying)
            negative = np.flatnonzero(amount < 0)
            if negative.size:
                redrawn = buying[negative]
                amount[negative] = 0.0 + 2 * mean_amounts[redrawn] * draws.uniform(redrawn)
            lanes.append(buying)
            seconds.append(time_of_day[kept] + day * DAY)
            amounts.append(amount)
    lane = np.concatenate(lanes) if lanes else np.empty(0, dtype=np.int64)
    second = np.concatenate(seconds) if seconds else np.empty(0, dtype=np.int64)
    amount = np.concatenate(amounts) if amounts else np.empty(0)

    overran = draws.overran()
    good = ~overran[lane]
    customer, second, amount = customer_ids[lane[good]], second[good], amount[good]
    if overran.any():
        again = spending_draws(
            streams,
            customer_ids[overran],
            mean_amounts[overran],
            mean_per_day[overran],
            days,
            slack * 1.5,
        )
        customer, second, amount = (
            np.concatenate([mine, theirs])
            for mine, theirs in zip((customer, second, amount), again, strict=True)
        )
    # Customer after customer; a stable sort keeps each customer's draw order.
    order = np.argsort(customer, kind="stable")
    return customer[order], second[order], amount[order]


def python_choices(words: np.random.MT19937, options: np.ndarray, count: int) -> np.ndarray:
    """`count` calls of random.Random.choice(options) on the generator whose 32-bit words
    `words` gives (see RandomStreams.python_words): the same values, as a vector.

    CPython's choice takes a word's top bit_length(n) bits and retries while they are >= n.
    """
    size = int(options.size)
    if count == 0:
        return options[:0]
    if size == 0:
        raise ValueError("cannot choose from no options")
    shift = np.uint64(32 - size.bit_length())
    picked: list[np.ndarray] = []
    missing = count
    while missing > 0:
        candidates = words.random_raw(2 * missing + 16) >> shift  # over half are accepted
        accepted = candidates[candidates < size][:missing]
        picked.append(accepted)
        missing -= accepted.size
    return options[np.concatenate(picked).astype(np.int64)]


def _compromised_terminals(
    terminal: np.ndarray, day: np.ndarray, terminals: int, draw_days: int, streams: RandomStreams
) -> np.ndarray:
    """Mask of transactions at a terminal in the S2_DAYS from a day it was drawn on."""
    compromised = np.zeros((terminals, draw_days + S2_DAYS), dtype=bool)
    for d in range(draw_days):
        drawn = streams.legacy(_S2, d).choice(
            terminals, min(S2_TERMINALS_PER_DAY, terminals), replace=False
        )
        compromised[drawn, d : d + S2_DAYS] = True
    return compromised[terminal, day]


def _compromised_cards(
    customer: np.ndarray, day: np.ndarray, customers: int, draw_days: int, streams: RandomStreams
) -> list[np.ndarray]:
    """Per draw day, the rows (time order) scenario 3 picks: floor(n / 3) of the n transactions
    of that day's cards in their S3_DAYS window."""
    if customer.size == 0:
        return []
    # Transactions grouped by customer, still in time order, so a card's window is a slice.
    by_customer = np.argsort(customer, kind="stable")
    bounds = np.searchsorted(customer[by_customer], np.arange(customers + 1))
    picks = []
    for d in range(draw_days):
        cards = streams.legacy(_S3, d).choice(
            customers, min(S3_CUSTOMERS_PER_DAY, customers), replace=False
        )
        windows = []
        for card in cards:
            rows = by_customer[bounds[card] : bounds[card + 1]]
            lo, hi = np.searchsorted(day[rows], [d, d + S3_DAYS])
            windows.append(rows[lo:hi])
        candidates = np.sort(np.concatenate(windows))
        # The Handbook samples the candidates, listed in time order, with Python's random.
        positions = streams.python(_S3_PICK, d).sample(range(candidates.size), candidates.size // 3)
        picks.append(candidates[np.asarray(positions, dtype=np.int64)])
    return picks


def genuine_transactions(
    customers: int = 5000,
    terminals: int = 10000,
    days: int = 183,
    seed: int = HANDBOOK_SEED,
    start_date: str = "2018-04-01",
    progress: bool = False,
) -> pd.DataFrame:
    """The transactions before any fraud scenario (all labelled genuine), sorted by time."""
    _check_arguments(customers, terminals, days, seed)
    streams = RandomStreams(seed)
    profiles = customer_profiles(customers, seed)
    reachable = reachable_terminals(profiles, terminal_profiles(terminals, seed))

    shopping = np.array([ids.size > 0 for ids in reachable], dtype=bool)
    # A customer with nowhere to shop never transacts.
    customer, seconds, amount = spending_draws(
        streams,
        profiles["CUSTOMER_ID"].to_numpy()[shopping],
        profiles["mean_amount"].to_numpy()[shopping],
        profiles["mean_nb_tx_per_day"].to_numpy()[shopping],
        days,
        progress=progress,
    )
    amount = np.round(amount, 2)
    # Terminals: per customer, one choice from its reachable terminals per transaction.
    bounds = np.searchsorted(customer, np.arange(customers + 1))
    terminal = np.empty(customer.size, dtype=np.int64)
    for customer_id in np.flatnonzero(shopping):
        rows = slice(bounds[customer_id], bounds[customer_id + 1])
        words = streams.python_words(_TERMINAL_CHOICE, int(customer_id))
        terminal[rows] = python_choices(words, reachable[customer_id], rows.stop - rows.start)
    # Stable sort: transactions in the same second keep (customer id, draw order).
    order = np.argsort(seconds, kind="stable")
    seconds = seconds[order]
    genuine = np.zeros(seconds.size, dtype=np.int64)
    return pd.DataFrame(
        {
            "TRANSACTION_ID": np.arange(seconds.size, dtype=np.int64),
            "TX_DATETIME": pd.Timestamp(start_date) + pd.to_timedelta(seconds, unit="s"),
            "CUSTOMER_ID": customer[order],
            "TERMINAL_ID": terminal[order],
            "TX_AMOUNT": amount[order],
            "TX_TIME_SECONDS": seconds,
            "TX_TIME_DAYS": seconds // DAY,
            "TX_FRAUD": genuine,
            "TX_FRAUD_SCENARIO": genuine.copy(),
        },
        columns=list(COLUMNS),
    )


def add_frauds(
    genuine: pd.DataFrame, customers: int, terminals: int, seed: int = HANDBOOK_SEED
) -> pd.DataFrame:
    """`genuine` (as genuine_transactions returns it) with the three scenarios applied.

    customers and terminals are the population sizes the scenarios draw from (customers
    without transactions included). Returns a new frame: labels set, the amounts scenario 3
    picks multiplied.
    """
    _check_arguments(customers, terminals, 0, seed)
    seconds = genuine["TX_TIME_SECONDS"].to_numpy()
    customer = genuine["CUSTOMER_ID"].to_numpy()
    terminal = genuine["TERMINAL_ID"].to_numpy()
    for name, ids, population in (
        ("CUSTOMER_ID", customer, customers),
        ("TERMINAL_ID", terminal, terminals),
    ):
        if ids.size and not (0 <= ids.min() and ids.max() < population):
            raise ValueError(
                f"{name} must lie in [0, {population}), got {ids.min()} .. {ids.max()}"
            )
    if not np.all(seconds[1:] >= seconds[:-1]):
        raise ValueError("genuine transactions must be sorted by TX_TIME_SECONDS")
    streams = RandomStreams(seed)
    amount = genuine["TX_AMOUNT"].to_numpy(dtype=np.float64, copy=True)
    day = seconds // DAY

    # Scenarios in the Handbook's order, each overwriting an earlier one's label. S1 looks at
    # the genuine amounts, so an amount S3 pushes above the threshold stays scenario 3.
    scenario = np.zeros(seconds.size, dtype=np.int64)
    scenario[amount > S1_THRESHOLD] = 1
    # The Handbook draws on days 0 .. last day with transactions - 1 (none on the last day).
    draw_days = int(day.max()) if day.size else 0
    scenario[_compromised_terminals(terminal, day, terminals, draw_days, streams)] = 2
    for chosen in _compromised_cards(customer, day, customers, draw_days, streams):
        # Picked again on a later day, it is multiplied again. Rounded to cents as the schema
        # and the stream's records have it (the Handbook leaves the product unrounded: at most
        # one unit in the last place, 1e-13 here, on about 1,200 amounts of its data set).
        amount[chosen] = np.round(amount[chosen] * S3_FACTOR, 2)
        scenario[chosen] = 3
    frauds = genuine.copy()
    frauds["TX_AMOUNT"] = amount
    frauds["TX_FRAUD"] = (scenario > 0).astype(np.int64)
    frauds["TX_FRAUD_SCENARIO"] = scenario
    return frauds


def generate(
    customers: int = 5000,
    terminals: int = 10000,
    days: int = 183,
    seed: int = HANDBOOK_SEED,
    start_date: str = "2018-04-01",
    progress: bool = False,
) -> pd.DataFrame:
    """Transactions in the simulator file schema (see COLUMNS), sorted by time.

    The defaults give the Handbook's published data set (see the module docstring).
    """
    genuine = genuine_transactions(customers, terminals, days, seed, start_date, progress)
    return add_frauds(genuine, customers, terminals, seed)
