//! Evaluation of `.rules` sources with the `starlark` crate: the builtins
//! (`prefix_rule`, `host_executable`, `network_rule`), argument checking and
//! the load-time validation of `match`/`not_match` examples.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use starlark::any::ProvidesStaticType;
use starlark::codemap::FileSpan;
use starlark::environment::{GlobalsBuilder, Module};
use starlark::eval::Evaluator;
use starlark::starlark_module;
use starlark::syntax::{AstModule, Dialect};
use starlark::values::Value;
use starlark::values::list::ListRef;
use starlark::values::none::NoneType;
use starlark::values::tuple::TupleRef;

use crate::{Decision, Error, HostExecutables, Index, Location, MatchOptions, Rule};

/// What all sources evaluated to.
pub(crate) struct Loaded {
    pub(crate) rules: Vec<Rule>,
    pub(crate) host_executables: HostExecutables,
}

/// State the builtins write to while one source is evaluated.
#[derive(Debug, Default, ProvidesStaticType)]
struct Builder {
    rules: Vec<Rule>,
    /// Examples to check once the current source has been evaluated, so
    /// that `host_executable` calls later in the file apply (as in Codex).
    pending: Vec<PendingExamples>,
    host_executables: HostExecutables,
}

#[derive(Debug)]
struct PendingExamples {
    rule: usize,
    matches: Vec<Vec<String>>,
    not_matches: Vec<Vec<String>>,
}

pub(crate) fn load(sources: &[(String, String)]) -> Result<Loaded, Error> {
    if sources.is_empty() {
        // Nothing to evaluate: skip building Starlark's globals and
        // evaluator, which touch megabytes of memory (a third of the
        // server's cold start).
        return Ok(Loaded {
            rules: Vec::new(),
            host_executables: HostExecutables::default(),
        });
    }
    let mut dialect = Dialect::Extended.clone();
    dialect.enable_f_strings = true;
    let globals = GlobalsBuilder::standard().with(rules_builtins).build();
    let builder = RefCell::new(Builder::default());
    for (name, text) in sources {
        let ast = AstModule::parse(name, text.clone(), &dialect)
            .map_err(|error| starlark_error(name, &error))?;
        Module::with_temp_heap(|module| {
            let mut eval = Evaluator::new(&module);
            eval.extra = Some(&builder);
            eval.eval_module(ast, &globals).map(drop)
        })
        .map_err(|error| starlark_error(name, &error))?;
        let mut builder = builder.borrow_mut();
        let pending = std::mem::take(&mut builder.pending);
        for examples in &pending {
            validate_examples(&builder, examples)?;
        }
    }
    let Builder {
        rules,
        host_executables,
        ..
    } = builder.into_inner();
    Ok(Loaded {
        rules,
        host_executables,
    })
}

fn starlark_error(name: &str, error: &starlark::Error) -> Error {
    let location = match error.span() {
        Some(span) => location_of(name, span).to_string(),
        None => name.to_owned(),
    };
    let message = format!("{:#}", error.without_diagnostic());
    Error::Invalid { location, message }
}

fn location_of(name: &str, span: &FileSpan) -> Location {
    let begin = span.resolve_span().begin;
    Location {
        file: name.to_owned(),
        line: begin.line + 1,
        column: begin.column + 1,
    }
}

/// Checks one rule's examples against that rule alone.
fn validate_examples(builder: &Builder, examples: &PendingExamples) -> Result<(), Error> {
    let rule = &builder.rules[examples.rule];
    let by_program: HashMap<String, Vec<usize>> = rule
        .heads
        .iter()
        .map(|head| (head.clone(), vec![0]))
        .collect();
    let index = Index {
        rules: std::slice::from_ref(rule),
        by_program: &by_program,
        host_executables: &builder.host_executables,
    };
    let invalid = |message: String| Error::Invalid {
        location: rule.location.to_string(),
        message,
    };
    let matches = |example: &[String]| {
        let program = OsString::from(&example[0]);
        let args: Vec<OsString> = example[1..].iter().map(OsString::from).collect();
        !index
            .matches(
                &program,
                &args,
                MatchOptions::default(),
                Path::new(&program),
            )
            .is_empty()
    };
    for example in &examples.not_matches {
        if matches(example) {
            return Err(invalid(format!(
                "not_match example {} matches rule {}",
                render_tokens(example),
                render_pattern(rule)
            )));
        }
    }
    for example in &examples.matches {
        if !matches(example) {
            return Err(invalid(format!(
                "match example {} does not match rule {}",
                render_tokens(example),
                render_pattern(rule)
            )));
        }
    }
    Ok(())
}

fn render_tokens(tokens: &[String]) -> String {
    format!("{tokens:?}")
}

fn render_pattern(rule: &Rule) -> String {
    let render = |alternatives: &[String]| match alternatives {
        [single] => format!("{single:?}"),
        _ => format!("{alternatives:?}"),
    };
    let tokens: Vec<String> = std::iter::once(render(&rule.heads))
        .chain(rule.rest.iter().map(|alternatives| render(alternatives)))
        .collect();
    format!("[{}]", tokens.join(", "))
}

fn builder<'a>(eval: &Evaluator<'_, 'a, '_>) -> anyhow::Result<std::cell::RefMut<'a, Builder>> {
    eval.extra
        .and_then(|extra| extra.downcast_ref::<RefCell<Builder>>())
        .map(RefCell::borrow_mut)
        .ok_or_else(|| anyhow!("rules builtins called outside a rules file"))
}

/// The elements of a list or tuple, `None` for any other value.
fn sequence<'v>(value: Value<'v>) -> Option<&'v [Value<'v>]> {
    if let Some(list) = ListRef::from_value(value) {
        Some(list.content())
    } else {
        TupleRef::from_value(value).map(|tuple| tuple.content())
    }
}

/// An optional argument: absent and `None` are the same.
fn given(value: Option<Value<'_>>) -> Option<Value<'_>> {
    value.filter(|value| !value.is_none())
}

fn parse_decision(value: Option<Value<'_>>) -> anyhow::Result<Decision> {
    let Some(value) = given(value) else {
        return Ok(Decision::Allow);
    };
    match value.unpack_str() {
        Some("allow") => Ok(Decision::Allow),
        Some("prompt") => Ok(Decision::Prompt),
        Some("forbidden") => Ok(Decision::Forbidden),
        Some(other) => {
            bail!("invalid decision {other:?}: expected \"allow\", \"prompt\" or \"forbidden\"")
        }
        None => bail!("decision must be a string (got {})", value.get_type()),
    }
}

fn parse_justification(value: Option<Value<'_>>) -> anyhow::Result<Option<String>> {
    let Some(value) = given(value) else {
        return Ok(None);
    };
    let Some(text) = value.unpack_str() else {
        bail!("justification must be a string (got {})", value.get_type());
    };
    if text.trim().is_empty() {
        bail!("justification cannot be empty");
    }
    Ok(Some(text.to_owned()))
}

/// `(heads, rest)` of a pattern.
fn parse_pattern(value: Value<'_>) -> anyhow::Result<(Vec<String>, Vec<Vec<String>>)> {
    let Some(elements) = sequence(value) else {
        bail!("pattern must be a list (got {})", value.get_type());
    };
    let mut tokens = elements
        .iter()
        .enumerate()
        .map(|(position, element)| parse_pattern_token(position, *element))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if tokens.is_empty() {
        bail!("pattern cannot be empty");
    }
    let mut heads = tokens.remove(0);
    let mut seen = std::collections::HashSet::new();
    heads.retain(|head| seen.insert(head.clone()));
    Ok((heads, tokens))
}

fn parse_pattern_token(position: usize, value: Value<'_>) -> anyhow::Result<Vec<String>> {
    if let Some(token) = value.unpack_str() {
        return Ok(vec![token.to_owned()]);
    }
    let Some(alternatives) = sequence(value) else {
        bail!(
            "pattern element {position} must be a string or a list of strings (got {})",
            value.get_type()
        );
    };
    if alternatives.is_empty() {
        bail!("pattern element {position} has no alternatives");
    }
    alternatives
        .iter()
        .map(|alternative| {
            alternative.unpack_str().map(str::to_owned).ok_or_else(|| {
                anyhow!(
                    "pattern element {position}: alternatives must be strings (got {})",
                    alternative.get_type()
                )
            })
        })
        .collect()
}

fn parse_examples(argument: &str, value: Option<Value<'_>>) -> anyhow::Result<Vec<Vec<String>>> {
    let Some(value) = given(value) else {
        return Ok(Vec::new());
    };
    let Some(examples) = sequence(value) else {
        bail!(
            "{argument} must be a list of examples (got {})",
            value.get_type()
        );
    };
    examples
        .iter()
        .map(|example| parse_example(argument, *example))
        .collect()
}

fn parse_example(argument: &str, value: Value<'_>) -> anyhow::Result<Vec<String>> {
    let tokens = if let Some(text) = value.unpack_str() {
        crate::split::split(text).map_err(|message| anyhow!("{argument} example: {message}"))?
    } else if let Some(tokens) = sequence(value) {
        tokens
            .iter()
            .map(|token| {
                token.unpack_str().map(str::to_owned).ok_or_else(|| {
                    anyhow!(
                        "{argument} example tokens must be strings (got {})",
                        token.get_type()
                    )
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?
    } else {
        bail!(
            "{argument} example must be a string or a list of strings (got {})",
            value.get_type()
        );
    };
    if tokens.is_empty() {
        bail!("{argument} example cannot be empty");
    }
    Ok(tokens)
}

fn parse_host_paths(name: &str, value: Value<'_>) -> anyhow::Result<Vec<PathBuf>> {
    let Some(elements) = sequence(value) else {
        bail!(
            "host_executable paths must be a list (got {})",
            value.get_type()
        );
    };
    let mut paths: Vec<PathBuf> = Vec::new();
    for element in elements {
        let Some(raw) = element.unpack_str() else {
            bail!(
                "host_executable paths must be strings (got {})",
                element.get_type()
            );
        };
        let path = Path::new(raw);
        if !path.is_absolute() {
            bail!("host_executable path {raw:?} is not absolute");
        }
        if path.file_name().and_then(|base| base.to_str()) != Some(name) {
            bail!("host_executable path {raw:?} must have basename {name:?}");
        }
        if !paths.iter().any(|known| known == path) {
            paths.push(path.to_owned());
        }
    }
    Ok(paths)
}

/// Positional order as Codex: `prefix_rule(pattern, decision, match,
/// not_match, justification)`; all but `pattern` are optional.
#[starlark_module]
fn rules_builtins(builder: &mut GlobalsBuilder) {
    fn prefix_rule<'v>(
        pattern: Value<'v>,
        decision: Option<Value<'v>>,
        r#match: Option<Value<'v>>,
        not_match: Option<Value<'v>>,
        justification: Option<Value<'v>>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        let (heads, rest) = parse_pattern(pattern)?;
        let decision = parse_decision(decision)?;
        let justification = parse_justification(justification)?;
        let matches = parse_examples("match", r#match)?;
        let not_matches = parse_examples("not_match", not_match)?;
        let span = eval
            .call_stack_top_location()
            .ok_or_else(|| anyhow!("prefix_rule must be called from a rules file"))?;
        let location = location_of(span.filename(), &span);
        let mut builder = builder(eval)?;
        let rule = builder.rules.len();
        builder.rules.push(Rule {
            heads,
            rest,
            decision,
            justification,
            location,
        });
        if !matches.is_empty() || !not_matches.is_empty() {
            builder.pending.push(PendingExamples {
                rule,
                matches,
                not_matches,
            });
        }
        Ok(NoneType)
    }

    fn host_executable<'v>(
        name: &str,
        paths: Value<'v>,
        eval: &mut Evaluator<'v, '_, '_>,
    ) -> anyhow::Result<NoneType> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            bail!("host_executable name must be a bare program name (got {name:?})");
        }
        let paths = parse_host_paths(name, paths)?;
        builder(eval)?
            .host_executables
            .insert(name.to_owned(), paths);
        Ok(NoneType)
    }

    fn network_rule<'v>(
        host: &str,
        protocol: &str,
        decision: &str,
        justification: Option<Value<'v>>,
    ) -> anyhow::Result<NoneType> {
        if host.trim().is_empty() {
            bail!("network_rule host cannot be empty");
        }
        if !matches!(
            protocol,
            "http" | "https" | "https_connect" | "http-connect" | "socks5_tcp" | "socks5_udp"
        ) {
            bail!(
                "invalid network_rule protocol {protocol:?}: expected http, https, socks5_tcp or socks5_udp"
            );
        }
        if !matches!(decision, "allow" | "prompt" | "forbidden" | "deny") {
            bail!(
                "invalid decision {decision:?}: expected \"allow\", \"prompt\", \"forbidden\" or \"deny\""
            );
        }
        parse_justification(justification)?;
        Ok(NoneType)
    }
}
