"""Counters two threads hand work over with, polled without the GIL (:mod:`.workers`).

A thread that waits for another to publish a value polls the counter in a numba loop that
releases the GIL, for a bounded number of polls, before it goes to sleep. Waking a
sleeping thread costs tens of microseconds (more in a virtual machine); a poll that sees
the value arrive costs well under one. The loads and stores are atomic with acquire and
release order, so whatever the publishing thread wrote before the store is visible to the
thread whose load sees it (a plain load in a loop could also be hoisted out of it by the
compiler). A ``pause`` between polls lets the core rest a little.
"""

from __future__ import annotations

import platform

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def _load_acquire(typingctx, counters, index):
    """counters[index] (int64), loaded atomically with acquire order."""

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        array = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, array, [args[1]])
        return builder.load_atomic(pointer, "acquire", 8)

    return types.int64(counters, index), codegen


@intrinsic
def _store_release(typingctx, counters, index, value):
    """counters[index] = value (int64), stored atomically with release order."""

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        array = context.make_array(array_type)(context, builder, args[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, array, [args[1]])
        builder.store_atomic(args[2], pointer, "release", 8)
        return context.get_dummy_value()

    return types.void(counters, index, value), codegen


_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


@intrinsic
def _pause(typingctx):
    """The x86 ``pause`` hint of a polling loop (nothing on other processors)."""

    def codegen(context, builder, signature, args):
        if _X86:
            function_type = ir.FunctionType(ir.VoidType(), [])
            name = "llvm.x86.sse2.pause"
            builder.call(cgutils.get_or_insert_function(builder.module, function_type, name), [])
        return context.get_dummy_value()

    return types.void(), codegen


def _poll(counters, index, value, polls):
    """True as soon as counters[index] == value, False after ``polls`` polls without."""
    for _ in range(polls):
        if _load_acquire(counters, index) == value:
            return True
        _pause()
    return False


def _publish(counters, index, value):
    """counters[index] = value, after everything this thread wrote before."""
    _store_release(counters, index, value)


poll = njit(cache=True, nogil=True)(_poll)
publish = njit(cache=True, nogil=True)(_publish)
