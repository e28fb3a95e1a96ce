//! Classic BPF for the sandbox's seccomp filters: the instructions, a
//! small assembler with labels for the filters written by hand (`setid`,
//! `exec_notify`: tests seccompiler cannot express compactly, such as "any
//! of these bits set"), and the conversion of seccompiler's programs.
//!
//! **Invariant:** every program this module assembles ends each path in a
//! return, and its jumps land inside it (labels are resolved or assembly
//! fails); `seccomp::join` relies on both.

use libc::{
    BPF_ABS, BPF_JA, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_RET, BPF_W,
    sock_filter,
};

/// A program, as `seccomp(2)` takes it.
pub(crate) type Program = Vec<sock_filter>;

#[cfg(target_arch = "x86_64")]
pub(crate) const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
pub(crate) const AUDIT_ARCH: u32 = 0xC000_00B7;

/// `offsetof(struct seccomp_data, nr)`, `arch` and `args[i]` (its low 32
/// bits: both architectures are little-endian).
pub(crate) const NR: u32 = 0;
pub(crate) const ARCH: u32 = 4;
pub(crate) const fn arg(i: u32) -> u32 {
    16 + 8 * i
}

/// `SECCOMP_RET_ERRNO` with `errno`.
pub(crate) const fn errno(errno: libc::c_int) -> u32 {
    libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA)
}

fn insn(code: u32, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// seccompiler's instructions as the kernel's.
pub(crate) fn from_seccompiler(program: seccompiler::BpfProgram) -> Program {
    program
        .into_iter()
        .map(|i| insn(u32::from(i.code), i.jt, i.jf, i.k))
        .collect()
}

/// A place in a program being assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Label(usize);

/// A jump whose target is a label, resolved by [`Asm::finish`].
enum Fixup {
    /// The true branch of a conditional jump (its false branch falls
    /// through).
    True(usize, Label),
    /// An unconditional jump.
    Always(usize, Label),
}

/// An assembler: instructions in order, jumps to labels placed anywhere.
#[derive(Default)]
pub(crate) struct Asm {
    code: Program,
    labels: Vec<Option<usize>>,
    fixups: Vec<Fixup>,
}

impl Asm {
    pub(crate) fn new() -> Asm {
        Asm::default()
    }

    pub(crate) fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// The next instruction is at `label`.
    pub(crate) fn place(&mut self, label: Label) {
        self.labels[label.0] = Some(self.code.len());
    }

    /// `A = seccomp_data[offset]` (32 bits).
    pub(crate) fn load(&mut self, offset: u32) {
        self.code.push(insn(BPF_LD | BPF_W | BPF_ABS, 0, 0, offset));
    }

    pub(crate) fn ret(&mut self, action: u32) {
        self.code.push(insn(BPF_RET | BPF_K, 0, 0, action));
    }

    /// To `to` when `A == k`.
    pub(crate) fn jump_eq(&mut self, k: u32, to: Label) {
        self.conditional(BPF_JEQ, k, to);
    }

    /// To `to` when `A >= k`.
    pub(crate) fn jump_ge(&mut self, k: u32, to: Label) {
        self.conditional(BPF_JGE, k, to);
    }

    /// To `to` when `A & k != 0`.
    pub(crate) fn jump_any(&mut self, k: u32, to: Label) {
        self.conditional(BPF_JSET, k, to);
    }

    pub(crate) fn jump(&mut self, to: Label) {
        self.fixups.push(Fixup::Always(self.code.len(), to));
        self.code.push(insn(BPF_JMP | BPF_JA, 0, 0, 0));
    }

    fn conditional(&mut self, op: u32, k: u32, to: Label) {
        self.fixups.push(Fixup::True(self.code.len(), to));
        self.code.push(insn(BPF_JMP | op | BPF_K, 0, 0, k));
    }

    /// The program, every jump resolved. Panics on a label never placed,
    /// a backward jump or a conditional one farther than 255 instructions:
    /// mistakes in the filters' code, caught by their unit tests.
    pub(crate) fn finish(mut self) -> Program {
        for fixup in &self.fixups {
            let (at, label) = match *fixup {
                Fixup::True(at, label) | Fixup::Always(at, label) => (at, label),
            };
            let target = self.labels[label.0].expect("every label is placed");
            let offset = target
                .checked_sub(at + 1)
                .expect("jumps go forward (classic BPF)");
            match fixup {
                Fixup::True(..) => {
                    self.code[at].jt = u8::try_from(offset).expect("a conditional jump within 255")
                }
                Fixup::Always(..) => self.code[at].k = offset as u32,
            }
        }
        self.code
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Every jump of `program` lands inside it, and its last instruction
    /// is a return.
    pub(crate) fn assert_well_formed(program: &[sock_filter]) {
        let last = program.last().expect("not empty");
        assert_eq!(u32::from(last.code), BPF_RET | BPF_K);
        for (i, insn) in program.iter().enumerate() {
            let code = u32::from(insn.code);
            if code & 0x07 != BPF_JMP {
                continue;
            }
            if code & 0xf0 == BPF_JA {
                assert!(i + 1 + (insn.k as usize) < program.len(), "ja at {i}");
            } else {
                assert!(i + 1 + usize::from(insn.jt) < program.len(), "jt at {i}");
                assert!(i + 1 + usize::from(insn.jf) < program.len(), "jf at {i}");
            }
        }
    }

    #[test]
    fn labels_resolve_forward() {
        let mut asm = Asm::new();
        let (yes, end) = (asm.label(), asm.label());
        asm.load(NR);
        asm.jump_eq(7, yes);
        asm.jump(end);
        asm.place(yes);
        asm.ret(errno(libc::EPERM));
        asm.place(end);
        asm.ret(libc::SECCOMP_RET_ALLOW);
        let program = asm.finish();
        assert_eq!((program[1].jt, program[1].jf), (1, 0));
        assert_eq!(program[2].k, 1);
        assert_well_formed(&program);
    }
}
