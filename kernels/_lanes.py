"""SIMD lanes for numba kernels: an LLVM ``<n x double>`` or ``<8 x float>`` as a numba value.

``F64X2`` and ``F64X4`` values add, subtract and multiply lane by lane with plain IEEE
operations (no fast-math flag, so never contracted into a fused multiply-add): each lane rounds
exactly as the scalar operation would. The intrinsics below build, split and join them, and
expose the few LLVM operations the sample kernels need (a multiply-add contracted under
LLVM's own rule, a per-lane running maximum of magnitudes, a cache prefetch). Used by
kernels/_samples.py, whose K-weighting runs both biquads of both channels as one 4-lane
operation.

``F32X8`` values are eight float32 lanes of one array row, loaded and stored in place
(:func:`load8`, :func:`store8`), with the selections of a sorted window: numba's own scalar
``min`` and ``max`` (the same comparison, the same operand order, so the same value in every
case, NaN and signed zeros included) and a select on ``<``. Used by kernels/_hpss.py, whose
running medians keep eight lanes of a window column in registers while they walk its rows.
"""

from __future__ import annotations

import operator

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.extending import (
    intrinsic,
    lower_builtin,
    models,
    register_model,
    type_callable,
)


class _F64Vec(types.Type):
    """A value held as an LLVM ``<n x double>``: ``+``, ``-`` and ``*`` act per lane, each lane
    rounding exactly as the scalar operation (no fast-math flag, so never contracted)."""

    def __init__(self, n):
        self.n = n
        super().__init__(name=f"f64x{n}")


F64X2 = _F64Vec(2)
F64X4 = _F64Vec(4)


@register_model(_F64Vec)
class _F64VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(ir.DoubleType(), fe_type.n))


def _lane_op(op, instruction):
    @type_callable(op)
    def _typer(context):
        def typer(a, b):
            if isinstance(a, _F64Vec) and a == b:
                return a

        return typer

    @lower_builtin(op, _F64Vec, _F64Vec)
    def _lower(context, builder, sig, args):
        return getattr(builder, instruction)(args[0], args[1])


_lane_op(operator.add, "fadd")
_lane_op(operator.sub, "fsub")
_lane_op(operator.mul, "fmul")

_I32 = ir.IntType(32)


def _pack(builder, vtype, values):
    v = ir.Constant(vtype, ir.Undefined)
    for k, x in enumerate(values):
        v = builder.insert_element(v, x, ir.Constant(_I32, k))
    return v


def _llvm_suffix(t):
    """The overload suffix of an LLVM intrinsic on ``double`` or ``<n x double>``."""
    return f"v{t.count}f64" if isinstance(t, ir.VectorType) else "f64"


def _shuffle(builder, a, b, lanes):
    return builder.shuffle_vector(a, b, ir.Constant(ir.VectorType(_I32, len(lanes)), lanes))


@intrinsic
def v2(typingctx, a, b):
    """``<a, b>``"""

    def codegen(context, builder, sig, args):
        return _pack(builder, ir.VectorType(ir.DoubleType(), 2), args)

    return F64X2(types.float64, types.float64), codegen


@intrinsic
def v4(typingctx, a, b, c, d):
    """``<a, b, c, d>``"""

    def codegen(context, builder, sig, args):
        return _pack(builder, ir.VectorType(ir.DoubleType(), 4), args)

    return F64X4(types.float64, types.float64, types.float64, types.float64), codegen


@intrinsic
def lane(typingctx, v, k):
    """Lane ``k`` of a vector, as a float64."""

    def codegen(context, builder, sig, args):
        return builder.extract_element(args[0], args[1])

    if isinstance(v, _F64Vec) and isinstance(k, types.Integer):
        return types.float64(v, k), codegen


@intrinsic
def low(typingctx, v):
    """Lanes 0, 1 of a 4-lane vector."""

    def codegen(context, builder, sig, args):
        return _shuffle(builder, args[0], args[0], [0, 1])

    return F64X2(F64X4), codegen


@intrinsic
def high(typingctx, v):
    """Lanes 2, 3 of a 4-lane vector."""

    def codegen(context, builder, sig, args):
        return _shuffle(builder, args[0], args[0], [2, 3])

    return F64X2(F64X4), codegen


@intrinsic
def cat(typingctx, a, b):
    """``<a0, a1, b0, b1>``"""

    def codegen(context, builder, sig, args):
        return _shuffle(builder, args[0], args[1], [0, 1, 2, 3])

    return F64X4(F64X2, F64X2), codegen


def _byte_pointer():
    """The pointer type ``llvm.prefetch`` takes: LLVM's opaque ``ptr`` where llvmlite has it
    (``declare_intrinsic`` then names the intrinsic ``llvm.prefetch.p0``), else ``i8*``
    (``llvm.prefetch.p0i8``, LLVM's typed pointers)."""
    try:
        return ir.PointerType()
    except TypeError:
        return ir.IntType(8).as_pointer()


@intrinsic
def prefetch(typingctx, arr, i):
    """Prefetch row ``i`` of a 2-d array into the cache (no effect on results)."""

    def codegen(context, builder, sig, args):
        aryty = sig.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        zero = ir.Constant(args[1].type, 0)
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1], zero],
                                       wraparound=False)
        ptr_t = _byte_pointer()
        ptr = builder.bitcast(ptr, ptr_t)
        fn = builder.module.declare_intrinsic(
            "llvm.prefetch", (ptr_t,), ir.FunctionType(ir.VoidType(), [ptr_t] + [_I32] * 3))
        # read (0), high temporal locality (3), data cache (1)
        builder.call(fn, [ptr, ir.Constant(_I32, 0), ir.Constant(_I32, 3), ir.Constant(_I32, 1)])
        return context.get_dummy_value()

    return types.void(arr, i), codegen


@intrinsic
def madd(typingctx, a, b, c):
    """``a * b + c`` as ``llvm.fmuladd``: one rounding (an FMA) where the target has fast FMA
    instructions, two roundings where it has not; exactly the rule by which LLVM contracts a
    multiply and an add compiled with the ``contract`` fast-math flag (kernels with REASSOC)."""

    def codegen(context, builder, sig, args):
        t = args[0].type
        fn = builder.module.declare_intrinsic(f"llvm.fmuladd.{_llvm_suffix(t)}", (),
                                              ir.FunctionType(t, [t] * 3))
        return builder.call(fn, args)

    if a == b == c and (a == types.float64 or isinstance(a, _F64Vec)):
        return a(a, a, a), codegen


@intrinsic
def vmax_abs(typingctx, m, v):
    """Per lane ``|v| if |v| > m else m`` (``max(m, abs(v))``)."""

    def codegen(context, builder, sig, args):
        t = args[1].type
        fabs = builder.module.declare_intrinsic(f"llvm.fabs.{_llvm_suffix(t)}", (),
                                                ir.FunctionType(t, [t]))
        av = builder.call(fabs, [args[1]])
        return builder.select(builder.fcmp_ordered(">", av, args[0]), av, args[0])

    return F64X2(F64X2, F64X2), codegen


class _F32Vec(types.Type):
    """A value held as an LLVM ``<n x float>``, operated on by the intrinsics below only."""

    def __init__(self, n):
        self.n = n
        super().__init__(name=f"f32x{n}")


F32X8 = _F32Vec(8)
_V8 = ir.VectorType(ir.FloatType(), 8)


@register_model(_F32Vec)
class _F32VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(ir.FloatType(), fe_type.n))


def _lanes_pointer(context, builder, aryty, ary, k):
    """``&ary[k]`` as a pointer to eight floats (no bounds check: the caller's loop keeps
    ``k + 8 <= ary.shape[0]``)."""
    arr = context.make_array(aryty)(context, builder, ary)
    ptr = cgutils.get_item_pointer(context, builder, aryty, arr, [k], wraparound=False)
    return builder.bitcast(ptr, _V8.as_pointer())


def _is_f32_row(a):
    return (isinstance(a, types.Array) and a.ndim == 1 and a.dtype == types.float32
            and a.layout == "C")


@intrinsic
def load8(typingctx, row, k):
    """``row[k : k + 8]`` of a contiguous float32 vector (a matrix row), as eight lanes."""

    def codegen(context, builder, sig, args):
        return builder.load(_lanes_pointer(context, builder, sig.args[0], args[0], args[1]),
                            align=4)

    if _is_f32_row(row) and isinstance(k, types.Integer):
        return F32X8(row, k), codegen


@intrinsic
def store8(typingctx, row, k, v):
    """``row[k : k + 8] = v`` for a contiguous float32 vector."""

    def codegen(context, builder, sig, args):
        builder.store(args[2], _lanes_pointer(context, builder, sig.args[0], args[0], args[1]),
                      align=4)
        return context.get_dummy_value()

    if _is_f32_row(row) and isinstance(k, types.Integer) and v == F32X8:
        return types.void(row, k, v), codegen


@intrinsic
def splat8(typingctx, x):
    """Eight lanes of ``x``."""

    def codegen(context, builder, sig, args):
        one = builder.insert_element(ir.Constant(_V8, ir.Undefined), args[0],
                                     ir.Constant(_I32, 0))
        return _shuffle(builder, one, one, [0] * 8)

    if x == types.float32:
        return F32X8(x), codegen


@intrinsic
def vmax8(typingctx, a, b):
    """Per lane ``max(a, b)`` as numba computes it for floats: ``b if b > a else a``."""

    def codegen(context, builder, sig, args):
        a, b = args
        return builder.select(builder.fcmp_ordered(">", b, a), b, a)

    if a == b == F32X8:
        return F32X8(a, b), codegen


@intrinsic
def vmin8(typingctx, a, b):
    """Per lane ``min(a, b)`` as numba computes it for floats: ``b if b < a else a``."""

    def codegen(context, builder, sig, args):
        a, b = args
        return builder.select(builder.fcmp_ordered("<", b, a), b, a)

    if a == b == F32X8:
        return F32X8(a, b), codegen


@intrinsic
def where_lt8(typingctx, x, y, a, b):
    """Per lane ``a if x < y else b``."""

    def codegen(context, builder, sig, args):
        x, y, a, b = args
        return builder.select(builder.fcmp_ordered("<", x, y), a, b)

    if x == y == a == b == F32X8:
        return F32X8(x, y, a, b), codegen
