/* switch_aarch64.S — context switch for AArch64 (AAPCS64).
 *
 * Saves exactly what the ABI says a callee must preserve: x19-x30, sp and
 * the low halves of v8-v15 (d8-d15). Frame at the saved stack pointer:
 *
 *   sp+0   x19 x20   sp+16  x21 x22   sp+32  x23 x24   sp+48  x25 x26
 *   sp+64  x27 x28   sp+80  x29 x30   sp+96  d8 d9     sp+112 d10 d11
 *   sp+128 d12 d13   sp+144 d14 d15   (160 bytes)
 *
 * ctx_aarch64.c builds the same frame for a fresh stack, with x19 = arg,
 * x20 = entry and x30 = co__ctx_trampoline.
 */
    .text
    .p2align 4
    .globl  co__ctx_switch
    .hidden co__ctx_switch
    .type   co__ctx_switch, %function
/* void co__ctx_switch(co__ctx *from, co__ctx *to)   x0 = from, x1 = to */
co__ctx_switch:
    .cfi_startproc
    sub     sp, sp, #160
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    stp     d8,  d9,  [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    mov     x9, sp
    str     x9, [x0]            /* from->sp */
    ldr     x9, [x1]            /* to->sp */
    mov     sp, x9
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    ldp     d8,  d9,  [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    add     sp, sp, #160
    ret
    .cfi_endproc
    .size   co__ctx_switch, .-co__ctx_switch

    .p2align 4
    .globl  co__ctx_trampoline
    .hidden co__ctx_trampoline
    .type   co__ctx_trampoline, %function
/* First code run on a fresh stack: entry(arg); must never return. */
co__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined x30
    mov     x0, x19
    blr     x20
    brk     #0
    .cfi_endproc
    .size   co__ctx_trampoline, .-co__ctx_trampoline

    .section .note.GNU-stack,"",%progbits
