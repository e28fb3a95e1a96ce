//! The per-exec decision: rules first, then the dangerous-command
//! heuristics, and a human (through an [`Approver`]) for `prompt`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use escalate::{Decider, Exec, ExecRequest, TimerPause, Verdict, display};
use policy::{Decision, MatchOptions, Policy, ProgramEvaluation};

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
    /// The path Bash used, absolute.
    used: PathBuf,
    /// The program to name to people: the file that runs when known, else
    /// `used`.
    shown: PathBuf,
    /// `file:line:col` of the rule that decided, if any.
    rule: Option<String>,
    /// Why a rule that matched did not decide (a link's other name).
    note: Option<String>,
}

impl Decider for RulesDecider {
    /// Run alone is given here, on the session's accepting thread: it logs
    /// nothing at the default level, so a stalled stderr cannot stall the
    /// shell's execs. Everything else is judged again, and logged, on a
    /// worker.
    fn decide_now(&self, exec: &Exec<'_>) -> Option<Verdict> {
        let judged = self.judge(exec.request, exec.program);
        match judged.judgement {
            Judgement::Final(Verdict::Run) if judged.note.is_none() => {
                log_decision(exec.request, &judged, &Verdict::Run);
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

    fn decide(&self, exec: &Exec<'_>) -> Verdict {
        let judged = self.judge(exec.request, exec.program);
        match &judged.judgement {
            Judgement::Final(verdict) => {
                log_decision(exec.request, &judged, verdict);
                verdict.clone()
            }
            Judgement::Ask { dangerous } => {
                let program = &judged.shown;
                if let Some(reason) = dangerous {
                    tracing::info!(program = %program.display(), %reason, "no rule matched a dangerous command");
                }
                let verdict = self.prompt(exec, &judged.used);
                tracing::info!(program = %program.display(), args = %log_args(exec.request), cwd = %log_cwd(exec.request),
                    rule = judged.rule.as_deref().unwrap_or("none"), ?verdict, "exec decided by the user");
                verdict
            }
        }
    }

    /// The exec check's path: the same judgement, but an `allow` runs the
    /// program inside the sandbox (only the wrapper's path escalates).
    /// `request.file` is already the file that runs.
    fn check_sandboxed(&self, request: &ExecRequest) -> Option<Verdict> {
        let judged = self.judge(request, None);
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
        let judged = self.judge(request, None);
        let verdict = match sandboxed_question(request) {
            Ok(message) => match self.ask_with(&message) {
                Verdict::Escalate => Verdict::Run,
                other => other,
            },
            Err(len) => too_long(len),
        };
        tracing::info!(program = %judged.shown.display(), args = %log_args(request), cwd = %log_cwd(request),
            rule = judged.rule.as_deref().unwrap_or("none"), ?verdict, "exec (not through the shell) decided by the user");
        verdict
    }
}

/// The program to name to people: the file that runs when known.
fn shown_program<'a>(exec: &'a Exec<'_>, used: &'a Path) -> &'a Path {
    exec.program.unwrap_or(used)
}

/// `argv[1..]`, quoted and cut for a log line.
fn log_args(request: &ExecRequest) -> String {
    let args = request.argv.get(1..).unwrap_or_default();
    match args.split_first() {
        Some((first, rest)) => display::for_log(first, rest.iter().map(OsString::as_os_str)),
        None => String::new(),
    }
}

fn log_cwd(request: &ExecRequest) -> String {
    display::for_log(&request.cwd, [])
}

/// The audit trail: every verdict at info, with the rule that decided;
/// a plain Run (no rule, nothing dangerous) only at debug, as its log line
/// would cost more than the decision.
fn log_decision(request: &ExecRequest, judged: &Judged, verdict: &Verdict) {
    let program = judged.shown.display();
    let (args, cwd) = (log_args(request), log_cwd(request));
    let rule = judged.rule.as_deref().unwrap_or("none");
    let note = judged.note.as_deref().unwrap_or("");
    if *verdict == Verdict::Run && judged.rule.is_none() && judged.note.is_none() {
        tracing::debug!(%program, %args, %cwd, rule, ?verdict, "exec decided");
    } else {
        tracing::info!(%program, %args, %cwd, rule, note, ?verdict, "exec decided");
    }
}

impl RulesDecider {
    /// Rules (by both names of the program) first, then the
    /// dangerous-command heuristics. No side effects.
    /// `resolved`: the file the program resolves to, when known.
    fn judge(&self, request: &ExecRequest, resolved: Option<&Path>) -> Judged {
        let used = program_path(request);
        let shown = resolved.unwrap_or(&used).to_path_buf();
        let args = request.argv.get(1..).unwrap_or_default();
        let evaluation = self
            .policy
            .check_program(used.as_os_str(), resolved, args, self.options);
        let judgement = match evaluation.decision {
            Some(Decision::Allow) => Judgement::Final(Verdict::Escalate),
            Some(Decision::Forbidden) => {
                Judgement::Final(Verdict::Deny(forbidden_reason(&shown, args, &evaluation)))
            }
            Some(Decision::Prompt) => Judgement::Ask { dangerous: None },
            None => {
                let dangerous = policy::dangerous_reason(&used.clone().into_os_string(), args)
                    .or_else(|| {
                        let file = resolved?.as_os_str().to_owned();
                        policy::dangerous_reason(&file, args)
                    });
                match dangerous {
                    Some(reason) => Judgement::Ask {
                        dangerous: Some(reason),
                    },
                    None => Judgement::Final(Verdict::Run),
                }
            }
        };
        let rule = evaluation
            .matched_rules()
            .find(|m| Some(m.decision) == evaluation.decision)
            .map(|m| {
                let l = &m.location;
                format!("{}:{}:{}", l.file, l.line, l.column)
            });
        // An allow of one name that the other name's lack of a rule
        // overruled: say so in the log.
        let note = match (&evaluation.by_file, evaluation.decision) {
            (Some(by_file), None)
                if evaluation.by_name.decision.is_some() || by_file.decision.is_some() =>
            {
                Some(format!(
                    "{} resolves to {}: a program escalates only when a rule allows both names",
                    used.display(),
                    shown.display()
                ))
            }
            _ => None,
        };
        Judged {
            judgement,
            used,
            shown,
            rule,
            note,
        }
    }

    fn prompt(&self, exec: &Exec<'_>, used: &Path) -> Verdict {
        let message = match question(exec, used) {
            Ok(message) => message,
            Err(len) => return too_long(len),
        };
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

/// The approval question: the reference's ``Allow agent to run `<file>
/// <args>` in `<workdir>`?`` with the file that runs, every word quoted so
/// that control characters and argument boundaries show; the name Bash
/// used when its file name differs; the request's variables the program
/// would get that differ from the server's; and, when the escalation would
/// be refused, that it runs inside the sandbox and why. `Err(bytes)` when
/// the command is too long to show whole.
pub fn question(exec: &Exec<'_>, used: &Path) -> Result<String, usize> {
    let program = shown_program(exec, used);
    let args = exec.request.argv.get(1..).unwrap_or_default();
    let (command, omitted) = display::command_line_within(
        program.as_os_str(),
        args.iter().map(OsString::as_os_str),
        MAX_QUESTION,
    );
    let mut message = format!("Allow agent to run `{command}`");
    if program.file_name() != used.file_name() {
        message.push_str(&format!(
            " (started as `{}`)",
            display::quote(used.as_os_str())
        ));
    }
    message.push_str(&format!(" in `{}`", display::quote(exec.cwd().as_os_str())));
    let changes = exec.env_changes();
    if !changes.is_empty() {
        let vars: Vec<String> = changes
            .iter()
            .map(|(k, v)| {
                let mut kv = k.to_os_string();
                kv.push("=");
                kv.push(v);
                display::quote(&kv)
            })
            .collect();
        message.push_str(&format!(" with `{}`", vars.join(" ")));
    }
    message.push('?');
    if omitted > 0 || message.len() > MAX_QUESTION {
        return Err(message.len() + omitted);
    }
    if let Some(refusal) = exec.refusal() {
        message.push_str(&format!(
            " It cannot run outside the sandbox ({}); if you accept, it runs inside the sandbox.",
            display::one_line(&display::cut(&refusal.to_string(), MAX_QUESTION))
        ));
    }
    Ok(message)
}

/// The exec check's question (the program runs inside the sandbox whatever
/// the answer): ``Allow agent to run `<file> <args>` in `<cwd>` (inside the
/// sandbox)?``, every word quoted as in [`question`]. `Err(bytes)` when the
/// command is too long to show whole.
pub fn sandboxed_question(request: &ExecRequest) -> Result<String, usize> {
    let args = request.argv.get(1..).unwrap_or_default();
    let (command, omitted) = display::command_line_within(
        &request.file,
        args.iter().map(OsString::as_os_str),
        MAX_QUESTION,
    );
    let message = format!(
        "Allow agent to run `{command}` in `{}` (inside the sandbox)?",
        display::quote(&request.cwd)
    );
    if omitted > 0 || message.len() > MAX_QUESTION {
        return Err(message.len() + omitted);
    }
    Ok(message)
}

/// The denial of a question too long to show whole.
fn too_long(len: usize) -> Verdict {
    Verdict::Deny(format!(
        "too long to approve: {len} bytes (at most {MAX_QUESTION} can be shown in a question)"
    ))
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

/// Longest question (command, working directory, variables) shown to a
/// human: a longer one is denied rather than shown cut. Also the longest
/// command line quoted in a denial.
pub const MAX_QUESTION: usize = 4096;

/// `program arg1 arg2`, quoted, for a denial; cut at [`MAX_QUESTION`]
/// bytes with the number of bytes left out.
pub fn command_line(program: &Path, args: &[OsString]) -> String {
    let (mut line, omitted) = display::command_line_within(
        program.as_os_str(),
        args.iter().map(OsString::as_os_str),
        MAX_QUESTION,
    );
    if omitted > 0 {
        line.push_str(&format!("… ({omitted} more bytes)"));
    }
    line
}

fn forbidden_reason(program: &Path, args: &[OsString], evaluation: &ProgramEvaluation) -> String {
    let rule = evaluation
        .matched_rules()
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
    fn command_line_quotes_and_cuts() {
        assert_eq!(
            command_line(Path::new("/usr/bin/rm"), &["-rf".into(), "/x y".into()]),
            "/usr/bin/rm -rf '/x y'"
        );
        assert_eq!(command_line(Path::new("/bin/ls"), &[]), "/bin/ls");
        let long = command_line(
            Path::new("/bin/echo"),
            &["é".repeat(5000).into(), "x".into()],
        );
        assert!(long.ends_with(" more bytes)"), "{long}");
        assert!(long.len() <= MAX_QUESTION + 40, "{}", long.len());
    }
}
