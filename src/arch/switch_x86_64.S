/* switch_x86_64.S — context switch for x86-64, System V ABI.
 *
 * Saves exactly what the ABI says a callee must preserve: rbx, rbp,
 * r12-r15, rsp, the MXCSR control bits and the x87 control word. The
 * frame left on the stack, from the saved stack pointer upwards:
 *
 *   sp+0   MXCSR (4 bytes), x87 control word (2 bytes), padding
 *   sp+8   r15   sp+16  r14   sp+24  r13   sp+32  r12
 *   sp+40  rbx   sp+48  rbp   sp+56  return address
 *
 * ctx_x86_64.c builds the same frame for a fresh stack, with r12 = arg,
 * r13 = entry and the return address = co__ctx_trampoline.
 */
#if defined(__CET__) && (__CET__ & 1)
#define ENDBR endbr64
#else
#define ENDBR
#endif

    .text
    .p2align 4
    .globl  co__ctx_switch
    .hidden co__ctx_switch
    .type   co__ctx_switch, @function
/* void co__ctx_switch(co__ctx *from, co__ctx *to)   rdi = from, rsi = to */
co__ctx_switch:
    .cfi_startproc
    ENDBR
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    subq    $8, %rsp
    stmxcsr (%rsp)
    fnstcw  4(%rsp)
    movq    %rsp, (%rdi)        /* from->sp */
    movq    (%rsi), %rsp        /* to->sp */
    ldmxcsr (%rsp)
    fldcw   4(%rsp)
    addq    $8, %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    ret
    .cfi_endproc
    .size   co__ctx_switch, .-co__ctx_switch

    .p2align 4
    .globl  co__ctx_trampoline
    .hidden co__ctx_trampoline
    .type   co__ctx_trampoline, @function
/* First code run on a fresh stack: entry(arg). rsp is 16-byte aligned here,
 * so the call leaves entry with the alignment the ABI promises. The return
 * address is undefined so that unwinders and debuggers stop here. */
co__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    movq    %r12, %rdi
    callq   *%r13
    ud2                         /* entry must never return */
    .cfi_endproc
    .size   co__ctx_trampoline, .-co__ctx_trampoline

    .section .note.GNU-stack,"",@progbits
