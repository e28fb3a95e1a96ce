//! The per-exec decision: rules first, then the dangerous-command
//! heuristics, and a human (through an [`Approver`]) for `prompt`.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use escalate::{Decider, ExecRequest, TimerPause, Verdict};
use policy::{Decision, Evaluation, MatchOptions, Policy};

/// Rule heads beyond which the wrappers are not given a list (it would not
/// fit `protocol::MAX_ASK_LIST` anyway) and ask about every exec.
const MAX_ASK_NAMES: usize = 1000;

/// The user's answer to an approval request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Accept,
    Decline,
    Cancel,
    /// Nobody could be asked (or nobody answered): the reason, for the denial.
    Unavailable(String),
}

/// Asks a human whether a command may run. May block.
pub trait Approver: Send + Sync + 'static {
    fn ask(&self, message: &str) -> Answer;
}

/// The decider of one `shell` call.
pub struct RulesDecider {
    pub policy: Arc<Policy>,
    pub options: MatchOptions,
    pub approver: Box<dyn Approver>,
    /// Paused while a human is asked, so the call's timeout does not run.
    pub timer: TimerPause,
    /// [`ask_list`] of `policy`, made once for every call.
    pub ask: Option<Arc<[String]>>,
}

/// Every program the rules and heuristics can decide anything but Run for:
/// the rule heads and the heuristics' programs (see
/// `escalate::Decider::asks_about`). `None` for a policy with so many heads
/// that the wrappers are better off asking about everything.
pub fn ask_list(policy: &Policy) -> Option<Arc<[String]>> {
    let tokens = policy.program_tokens();
    if tokens.len() > MAX_ASK_NAMES {
        return None;
    }
    let names = tokens.chain(policy::DANGEROUS_PROGRAMS.iter().copied());
    Some(names.map(str::to_owned).collect())
}

/// What the rules and heuristics say, before anyone is asked.
enum Judgement {
    Final(Verdict),
    /// A human must be asked; the heuristic's reason when no rule asked.
    Ask {
        dangerous: Option<String>,
    },
}

/// A [`Judgement`] with what the audit log needs.
struct Judged {
    judgement: Judgement,
    program: PathBuf,
    /// `file:line:col` of the rule that decided, if any.
    rule: Option<String>,
}

impl Decider for RulesDecider {
    /// Run alone is given here, on the session's accepting thread: it logs
    /// nothing at the default level, so a stalled stderr cannot stall the
    /// shell's execs. Everything else is judged again, and logged, on a
    /// worker.
    fn decide_now(&self, request: &ExecRequest) -> Option<Verdict> {
        let judged = self.judge(request);
        match judged.judgement {
            Judgement::Final(Verdict::Run) => {
                log_decision(request, &judged, &Verdict::Run);
                Some(Verdict::Run)
            }
            _ => None,
        }
    }

    fn asks_about(&self) -> Option<Vec<&str>> {
        self.ask
            .as_deref()
            .map(|names| names.iter().map(String::as_str).collect())
    }

    fn decide(&self, request: &ExecRequest) -> Verdict {
        let judged = self.judge(request);
        match &judged.judgement {
            Judgement::Final(verdict) => {
                log_decision(request, &judged, verdict);
                verdict.clone()
            }
            Judgement::Ask { dangerous } => {
                let program = &judged.program;
                if let Some(reason) = dangerous {
                    tracing::info!(program = %program.display(), %reason, "no rule matched a dangerous command");
                }
                let args = request.argv.get(1..).unwrap_or_default();
                let verdict = self.prompt(program, args, &request.cwd);
                tracing::info!(program = %program.display(), ?args, cwd = %Path::new(&request.cwd).display(),
                    rule = judged.rule.as_deref().unwrap_or("none"), ?verdict, "exec decided by the user");
                verdict
            }
        }
    }

    /// The exec check's path: the same judgement, but an `allow` runs the
    /// program inside the sandbox (only the wrapper's path escalates).
    fn check_sandboxed(&self, request: &ExecRequest) -> Option<Verdict> {
        let judged = self.judge(request);
        match &judged.judgement {
            Judgement::Final(Verdict::Escalate) => {
                log_decision(request, &judged, &Verdict::Run);
                Some(Verdict::Run)
            }
            Judgement::Final(verdict) => {
                log_decision(request, &judged, verdict);
                Some(verdict.clone())
            }
            Judgement::Ask { .. } => None,
        }
    }

    fn ask_sandboxed(&self, request: &ExecRequest) -> Verdict {
        let judged = self.judge(request);
        let program = &judged.program;
        let args = request.argv.get(1..).unwrap_or_default();
        let message = format!(
            "Allow agent to run `{}` in `{}` (inside the sandbox)?",
            command_line(program, args),
            Path::new(&request.cwd).display()
        );
        let verdict = match self.ask_with(&message) {
            Verdict::Escalate => Verdict::Run,
            other => other,
        };
        tracing::info!(program = %program.display(), ?args, cwd = %Path::new(&request.cwd).display(),
            rule = judged.rule.as_deref().unwrap_or("none"), ?verdict, "exec (not through the shell) decided by the user");
        verdict
    }
}

/// The audit trail: every verdict at info, with the rule that decided;
/// a plain Run (no rule, nothing dangerous) only at debug, as its log line
/// would cost more than the decision.
fn log_decision(request: &ExecRequest, judged: &Judged, verdict: &Verdict) {
    let program = judged.program.display();
    let args = request.argv.get(1..).unwrap_or_default();
    let cwd = Path::new(&request.cwd).display();
    let rule = judged.rule.as_deref().unwrap_or("none");
    if *verdict == Verdict::Run && judged.rule.is_none() {
        tracing::debug!(%program, ?args, %cwd, rule, ?verdict, "exec decided");
    } else {
        tracing::info!(%program, ?args, %cwd, rule, ?verdict, "exec decided");
    }
}

impl RulesDecider {
    /// Rules first, then the dangerous-command heuristics. No side effects.
    fn judge(&self, request: &ExecRequest) -> Judged {
        let program = program_path(request);
        let args = request.argv.get(1..).unwrap_or_default();
        let program_os = program.clone().into_os_string();
        let evaluation = self.policy.check(&program_os, args, self.options);
        let judgement = match evaluation.decision {
            Some(Decision::Allow) => Judgement::Final(Verdict::Escalate),
            Some(Decision::Forbidden) => {
                Judgement::Final(Verdict::Deny(forbidden_reason(&program, args, &evaluation)))
            }
            Some(Decision::Prompt) => Judgement::Ask { dangerous: None },
            None => match policy::dangerous_reason(&program_os, args) {
                Some(reason) => Judgement::Ask {
                    dangerous: Some(reason),
                },
                None => Judgement::Final(Verdict::Run),
            },
        };
        let rule = evaluation
            .matched_rules
            .iter()
            .find(|m| Some(m.decision) == evaluation.decision)
            .map(|m| {
                let l = &m.location;
                format!("{}:{}:{}", l.file, l.line, l.column)
            });
        Judged {
            judgement,
            program,
            rule,
        }
    }

    fn prompt(&self, program: &Path, args: &[OsString], cwd: &OsStr) -> Verdict {
        let message = format!(
            "Allow agent to run `{}` in `{}`?",
            command_line(program, args),
            Path::new(cwd).display()
        );
        self.ask_with(&message)
    }

    /// Asks `message`, the call's timer paused meanwhile: accepted is
    /// [`Verdict::Escalate`].
    fn ask_with(&self, message: &str) -> Verdict {
        let _paused = self.timer.pause();
        match self.approver.ask(message) {
            Answer::Accept => Verdict::Escalate,
            Answer::Decline => Verdict::Deny("User declined execution".into()),
            Answer::Cancel => Verdict::Deny("User cancelled execution".into()),
            Answer::Unavailable(reason) => Verdict::Deny(reason),
        }
    }
}

/// The absolute path of the program: the wrapper reports what Bash resolved,
/// which is relative when the command named a relative path.
pub fn program_path(request: &ExecRequest) -> PathBuf {
    let file = Path::new(&request.file);
    if file.is_absolute() {
        file.to_path_buf()
    } else {
        Path::new(&request.cwd).join(file)
    }
}

/// Longest command line quoted in a prompt or a denial: argv may be
/// megabytes, which no human reads and no wrapper should have to take.
const MAX_COMMAND_LINE: usize = 4096;

/// `program arg1 arg2`, lossily decoded, for messages; cut at
/// [`MAX_COMMAND_LINE`] bytes with `…`.
pub fn command_line(program: &Path, args: &[OsString]) -> String {
    let mut line = program.display().to_string();
    for arg in args {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
        if line.len() > MAX_COMMAND_LINE {
            break;
        }
    }
    if line.len() > MAX_COMMAND_LINE {
        let mut cut = MAX_COMMAND_LINE;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    line
}

fn forbidden_reason(program: &Path, args: &[OsString], evaluation: &Evaluation) -> String {
    let rule = evaluation
        .matched_rules
        .iter()
        .find(|m| m.decision == Decision::Forbidden);
    let mut reason = format!("`{}` is forbidden", command_line(program, args));
    if let Some(rule) = rule {
        let l = &rule.location;
        reason.push_str(&format!(
            " by the rule at {}:{}:{}",
            l.file, l.line, l.column
        ));
        if let Some(justification) = &rule.justification {
            reason.push_str(": ");
            reason.push_str(justification);
        }
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_path_resolves_relative_files_against_cwd() {
        let req = ExecRequest {
            file: "./run.sh".into(),
            argv: vec!["./run.sh".into()],
            env: vec![],
            cwd: "/work".into(),
        };
        assert_eq!(program_path(&req), PathBuf::from("/work/./run.sh"));
        let req = ExecRequest {
            file: "/bin/ls".into(),
            ..req
        };
        assert_eq!(program_path(&req), PathBuf::from("/bin/ls"));
    }

    #[test]
    fn command_line_joins_with_spaces() {
        assert_eq!(
            command_line(Path::new("/usr/bin/rm"), &["-rf".into(), "/x".into()]),
            "/usr/bin/rm -rf /x"
        );
        assert_eq!(command_line(Path::new("/bin/ls"), &[]), "/bin/ls");
        let long = command_line(
            Path::new("/bin/echo"),
            &["é".repeat(5000).into(), "x".into()],
        );
        assert_eq!(long.chars().last(), Some('…'));
        assert!(
            long.len() <= MAX_COMMAND_LINE + '…'.len_utf8(),
            "{}",
            long.len()
        );
    }
}
