"""Named integer codes shared by the numba kernels and the Python around them.

numba reads module-level ints as compile-time constants, so a kernel that writes
``elif op == VECTOR_INNER_PRODUCT`` compiles to the same code as ``op == 27``. Plain ints,
not ``IntEnum``: they need no typing support in numba and add nothing to compile time.
Because kernels freeze these values, :mod:`ops.jit` keys its on-disk cache by this file too.
The op codes are the rows of :data:`ops.table.OPS` (``tests/test_ops.py`` checks that they
agree); what each code means is written where it is used.
"""
from __future__ import annotations

# Op codes: ``code[row, 0]`` of a program, the row of the op in ops.table.OPS.
NO_OP = 0
SCALAR_SUM = 1
SCALAR_DIFF = 2
SCALAR_PRODUCT = 3
SCALAR_DIVISION = 4
SCALAR_ABS = 5
SCALAR_RECIPROCAL = 6
SCALAR_SIN = 7
SCALAR_COS = 8
SCALAR_TAN = 9
SCALAR_ARCSIN = 10
SCALAR_ARCCOS = 11
SCALAR_ARCTAN = 12
SCALAR_EXP = 13
SCALAR_LOG = 14
SCALAR_HEAVYSIDE = 15
VECTOR_HEAVYSIDE = 16
MATRIX_HEAVYSIDE = 17
SCALAR_VECTOR_PRODUCT = 18
SCALAR_BROADCAST = 19
VECTOR_RECIPROCAL = 20
VECTOR_NORM = 21
VECTOR_ABS = 22
VECTOR_SUM = 23
VECTOR_DIFF = 24
VECTOR_PRODUCT = 25
VECTOR_DIVISION = 26
VECTOR_INNER_PRODUCT = 27
VECTOR_OUTER_PRODUCT = 28
SCALAR_MATRIX_PRODUCT = 29
MATRIX_RECIPROCAL = 30
MATRIX_VECTOR_PRODUCT = 31
VECTOR_COLUMN_BROADCAST = 32
VECTOR_ROW_BROADCAST = 33
MATRIX_NORM = 34
MATRIX_COLUMN_NORM = 35
MATRIX_ROW_NORM = 36
MATRIX_TRANSPOSE = 37
MATRIX_ABS = 38
MATRIX_SUM = 39
MATRIX_DIFF = 40
MATRIX_PRODUCT = 41
MATRIX_DIVISION = 42
MATRIX_MATRIX_PRODUCT = 43
SCALAR_MIN = 44
VECTOR_MIN = 45
MATRIX_MIN = 46
SCALAR_MAX = 47
VECTOR_MAX = 48
MATRIX_MAX = 49
VECTOR_MEAN = 50
MATRIX_MEAN = 51
MATRIX_ROW_MEAN = 52
MATRIX_ROW_ST_DEV = 53
VECTOR_ST_DEV = 54
MATRIX_ST_DEV = 55
SCALAR_CONST_SET = 56
VECTOR_CONST_SET = 57
MATRIX_CONST_SET = 58
SCALAR_UNIFORM_SET = 59
VECTOR_UNIFORM_SET = 60
MATRIX_UNIFORM_SET = 61
SCALAR_GAUSSIAN_SET = 62
VECTOR_GAUSSIAN_SET = 63
MATRIX_GAUSSIAN_SET = 64

# Operand kinds: which memory an op reads or writes (ops.kinds.IN1_KIND, ...).
NONE_KIND, SCALAR_KIND, VECTOR_KIND, MATRIX_KIND = 0, 1, 2, 3

# Constant kinds: how a constant of an op is drawn and mutated (ops.kinds.CONST_KIND);
# 0 marks an unused constant.
NO_CONSTANT, VALUE_KIND, FRACTION_KIND, SPREAD_KIND = 0, 1, 2, 3

# Control codes: tape rows past the op table that drive an evaluation (see
# ops.interpreter.run_tape).
HALT = 99              # stop (ends a plain instruction sequence)
TRAIN_BEGIN = 100      # v0 = training features (if read), s0 = 0
TRAIN_PREDICTED = 101  # squash, record, divergence check, s0 = label
TRAIN_END = 102        # next training example: jump to column 1, else fall through
VALID_BEGIN = 103      # v0 = validation features (if read), s0 = 0
VALID_END = 104        # score; next validation example: jump to column 1, else fall through
EPOCH_END = 105        # fitness; next epoch: jump to column 1, else stop

# Mutation types (config key ``mutations``), also offsets into the mutation counters.
ALTER_PARAM = 0
RANDOMIZE_INSTRUCTION = 1
RANDOMIZE_COMPONENT = 2
IDENTITY = 3
INSERT_INSTRUCTION = 4
REMOVE_INSTRUCTION = 5
TRADE_INSTRUCTION = 6
RANDOMIZE_ALGORITHM = 7
NUM_MUTATION_TYPES = 8

# Search counters: slots of SearchState.counters, saved in checkpoints, so a slot never
# changes its meaning.
INDIVIDUALS = 0        # children made
TRAIN_STEPS = 1        # training examples run, summed over tasks
FILLED = 2             # population slots filled so far
OLDEST = 3             # slot of the oldest individual, the next to be replaced
FULL_EVALS = 4         # children evaluated (not taken from the cache)
STRUCTURE_HITS = 5     # children whose live program was already cached
FINGERPRINT_HITS = 6   # children whose predictions fingerprint was already cached
HURDLE_STOPS = 7       # evaluations stopped after the first task
BUDGET_REJECTS = 8     # children over the compute budget, not run
FORGOTTEN = 9          # times the cache was cleared (fec.forget_every)
EVICTIONS = 10         # cache entries evicted to make room
VALID_STEPS = 11       # validation examples run, summed over tasks
BEST_INDIVIDUAL = 12   # the child that set the best fitness
SAVED_TRAIN_STEPS = 13  # training examples the cache and hurdles saved
# Slots 14 and 15 have never been written; checkpoints keep them for their layout.
MUTATION_COUNTS = 16   # MUTATION_COUNTS + mutation type: how often it was applied
NUM_COUNTERS = MUTATION_COUNTS + NUM_MUTATION_TYPES

# Integer settings of a search experiment (Settings.ints).
STRATEGY = 0
POPULATION = 1
TOURNAMENT = 2
CONSTANT_RULE = 3
FEC_ON = 4
FORGET_EVERY = 5
HURDLES_ON = 6
HURDLE_WINDOW = 7
BUDGET_ON = 8
COMBINE = 9
MAX_INDIVIDUALS = 10
MAX_TRAIN_STEPS = 11
NUM_S = 12
NUM_V = 13
NUM_M = 14
CLASSIFICATION = 15
NUM_INT_SETTINGS = 16

# Float settings of a search experiment (Settings.floats).
MUTATE_PROB = 0
MAX_ABS_ERROR = 1
HURDLE_PERCENTILE = 2
COST_LIMIT = 3
ROUNDING_SCALE = 4
NUM_FLOAT_SETTINGS = 5
