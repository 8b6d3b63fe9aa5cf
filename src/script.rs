//! Rhai hooks: the logic a YAML scenario cannot express, as pure synchronous functions the
//! session engine calls.
//!
//! A script is compiled once; its AST and one sandboxed [`Engine`] are shared by every
//! shard. Hooks never block, sleep or touch files or the network: Rhai has no such
//! functions, and the engine's limits (operations per call, string, array and map sizes,
//! call depth) are always on, so a runaway loop ends in an error that is counted, not in
//! a stalled shard. Every limit has a floor and a ceiling ([`Limits::validate`]): Rhai
//! reads 0 as "unlimited", and a call depth past the ceiling would overflow the thread's
//! stack, so neither may reach the engine. `eval` and `import` are disabled.
//!
//! Scripts run only on threads with [`STACK_SIZE`] of stack: the shards, and
//! [`on_script_stack`] for the calls made while loading and checking.
//!
//! What a hook wants done besides its return value (count a metric, record a latency,
//! reconnect, leave) it asks for through the `session` object; the session engine carries
//! it out after the call returns. The session owns every await.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rhai::{Dynamic, Engine, EvalAltResult, Map, Scope, AST};

/// A hook a script may define: a function name and how many arguments it takes.
///
/// The fixed hooks are constants. Each step of the scenario has two more, named after it
/// ([`Hook::build`], [`Hook::judge`]): `fn auth(session)` builds the `auth` step's message,
/// `fn auth_reply(session, msg)` judges its replies. Step names come from the scenario, so
/// their hook names are interned once per name for the life of the process (a handful per
/// scenario), which keeps `Hook` `Copy` and its name a `&'static str` for error counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    name: &'static str,
    arity: u8,
}

impl Hook {
    /// `fn heartbeat(session)`: each heartbeat message.
    pub const HEARTBEAT: Hook = Hook::fixed("heartbeat", 1);
    /// `fn heartbeat_reply(session, msg)`: true = this is the ack, false or () = not.
    pub const HEARTBEAT_REPLY: Hook = Hook::fixed("heartbeat_reply", 2);
    /// `fn on_message(session, msg)`: a message no step was waiting for; return () to
    /// ignore it, or a map or string to send as the reply.
    pub const ON_MESSAGE: Hook = Hook::fixed("on_message", 2);
    /// `fn on_start(session)`: once when the session starts.
    pub const ON_START: Hook = Hook::fixed("on_start", 1);
    /// `fn on_end(session)`: once when the session ends.
    pub const ON_END: Hook = Hook::fixed("on_end", 1);

    /// Every hook that is not a step's.
    pub const FIXED: [Hook; 5] = [
        Hook::HEARTBEAT,
        Hook::HEARTBEAT_REPLY,
        Hook::ON_MESSAGE,
        Hook::ON_START,
        Hook::ON_END,
    ];

    const fn fixed(name: &'static str, arity: u8) -> Hook {
        Hook { name, arity }
    }

    /// `fn <step>(session)`: builds a step's message (a map, sent as JSON, or a string).
    pub fn build(step: &str) -> Hook {
        Hook {
            name: intern(step),
            arity: 1,
        }
    }

    /// `fn <step>_reply(session, msg)`: judges a reply to a step. true = accepted, false =
    /// rejected, () = not the reply.
    pub fn judge(step: &str) -> Hook {
        Hook {
            name: intern(&format!("{step}_reply")),
            arity: 2,
        }
    }

    /// The function name in the script.
    pub const fn name(self) -> &'static str {
        self.name
    }

    /// How many parameters it takes.
    pub const fn arity(self) -> usize {
        self.arity as usize
    }
}

/// The one `&'static str` for a hook name: leaked the first time it is seen, found again
/// after that, so compiling the same scenario many times (the tests do) leaks nothing more.
fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(known) = names.iter().find(|n| **n == name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.push(leaked);
    leaked
}

/// What a session does when a hook fails at run time.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Drop the socket and reconnect (cause `script_error`).
    #[default]
    Reconnect,
    /// The page leaves: close with 1000 and end the session.
    Leave,
    /// Carry on as if the hook were not there (a message hook falls back to `send`).
    Ignore,
}

/// Sandbox limits, settable in the scenario's `script:` block.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Operations per hook call. 50,000 is about a millisecond. From 100 to 1,000,000.
    #[serde(default = "default_operations")]
    #[schemars(range(min = 100, max = 1_000_000))]
    pub max_operations: u64,
    /// Longest string, in bytes. From 64 to 16 MiB (16,777,216).
    #[serde(default = "default_string")]
    #[schemars(range(min = 64, max = 16_777_216))]
    pub max_string_size: usize,
    /// Largest array, in elements. From 16 to 1,000,000.
    #[serde(default = "default_collection")]
    #[schemars(range(min = 16, max = 1_000_000))]
    pub max_array_size: usize,
    /// Largest map, in entries. From 16 to 1,000,000.
    #[serde(default = "default_collection")]
    #[schemars(range(min = 16, max = 1_000_000))]
    pub max_map_size: usize,
    /// Deepest call nesting. From 1 to 64.
    #[serde(default = "default_calls")]
    #[schemars(range(min = 1, max = 64))]
    pub max_call_levels: usize,
}

/// Stack for every thread that runs a script. Rhai recurses on the native stack for each
/// call level and each nested expression. Measured (a recursive function whose recursive
/// call sits inside 11 nested `switch`es, the most stack per level found): a debug build
/// survives 144 levels on 32 MiB and 64 on 16 MiB, a release build 256 on 8 MiB. With
/// the ceiling of 64 call levels, 32 MiB leaves a 2x margin in debug and far more in
/// release. It is address space, not memory: only the pages a script touches are used.
pub const STACK_SIZE: usize = 32 * 1024 * 1024;

/// The allowed range of each limit: `(name, floor, ceiling, what the ceiling protects)`.
pub const LIMIT_RANGES: [(&str, u64, u64, &str); 5] = [
    (
        "max_operations",
        100,
        1_000_000,
        "about 20 ms per call: a slower hook stalls every session on its shard",
    ),
    ("max_string_size", 64, 16 * 1024 * 1024, "16 MiB"),
    ("max_array_size", 16, 1_000_000, "memory"),
    ("max_map_size", 16, 1_000_000, "memory"),
    (
        "max_call_levels",
        1,
        64,
        "deeper recursion could overflow the stack",
    ),
];

/// A sandbox limit outside its allowed range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be between {floor} and {ceiling} ({why}), not {value}")]
pub struct LimitError {
    /// The limit's key under `limits`.
    pub name: &'static str,
    /// The value given.
    pub value: u64,
    /// The smallest allowed value.
    pub floor: u64,
    /// The largest allowed value.
    pub ceiling: u64,
    /// Why the range ends where it does.
    pub why: &'static str,
}

impl Limits {
    /// Checks every limit against [`LIMIT_RANGES`]; the first one out of range is the
    /// error.
    pub fn validate(&self) -> Result<(), LimitError> {
        let values = [
            self.max_operations,
            self.max_string_size as u64,
            self.max_array_size as u64,
            self.max_map_size as u64,
            self.max_call_levels as u64,
        ];
        for ((name, floor, ceiling, why), value) in LIMIT_RANGES.into_iter().zip(values) {
            if !(floor..=ceiling).contains(&value) {
                return Err(LimitError {
                    name,
                    value,
                    floor,
                    ceiling,
                    why: if value < floor {
                        "0 would mean unlimited"
                    } else {
                        why
                    },
                });
            }
        }
        Ok(())
    }
}

/// Runs `f` on a fresh thread with [`STACK_SIZE`] of stack and waits for it: for script
/// calls made outside a shard (loading a `.rhai` scenario, `wsoak check`), whose callers'
/// threads may have as little as 2 MiB. A panic in `f` is resumed on the caller.
pub fn on_script_stack<R: Send>(f: impl FnOnce() -> R + Send) -> std::io::Result<R> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("wsoak-script".into())
            .stack_size(STACK_SIZE)
            .spawn_scoped(scope, f)?;
        Ok(handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    })
}

fn default_operations() -> u64 {
    50_000
}
fn default_string() -> usize {
    64 * 1024
}
fn default_collection() -> usize {
    10_000
}
fn default_calls() -> usize {
    32
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: default_operations(),
            max_string_size: default_string(),
            max_array_size: default_collection(),
            max_map_size: default_collection(),
            max_call_levels: default_calls(),
        }
    }
}

/// A script that failed to compile, with its place.
#[derive(Debug)]
pub struct CompileError {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

/// A hook that failed at run time.
#[derive(Debug, Clone)]
pub struct HookError {
    /// The hook.
    pub hook: Hook,
    /// True when a sandbox limit stopped it (an endless loop, say).
    pub limit: bool,
    /// What went wrong, with the script line when known.
    pub message: String,
}

/// A compiled script and the engine that runs it. Shared by every shard.
pub struct Script {
    engine: Engine,
    ast: AST,
    /// Every hook the script defines: the fixed ones, and any function of one or two
    /// parameters (a step's hooks, once the scenario names the steps).
    defined: Vec<Hook>,
    /// What sessions do when a hook fails.
    pub on_error: OnError,
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hooks: Vec<&str> = self.defined.iter().map(|h| h.name()).collect();
        f.debug_struct("Script")
            .field("hooks", &hooks)
            .field("on_error", &self.on_error)
            .finish()
    }
}

/// Something a hook asked the session to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Add one to a custom counter.
    Count(String),
    /// Record a custom latency, in ms.
    Record(String, f64),
    /// Drop the socket and reconnect.
    Reconnect,
    /// Leave (close 1000 and end the session).
    Leave,
    /// Count a failure of what the session is doing: while bound, a failed heartbeat
    /// (towards `max_failures`); while authenticating or binding, a failed step.
    Fail,
}

/// What a session's hooks see as `session`. One per scripted session; its `state` map
/// persists across reconnects for the session's whole life.
#[derive(Debug, Clone)]
pub struct SessionHandle(Arc<Mutex<SessionData>>);

/// The data behind a [`SessionHandle`].
#[derive(Debug, Default)]
pub struct SessionData {
    /// The session's id.
    pub id: i64,
    /// The session's card row, by column name.
    pub card: Map,
    /// Free-form state, kept across reconnects.
    pub state: Map,
    /// Connections made so far (1 during the first).
    pub connects: i64,
    /// Effects requested by the current call.
    pub effects: Vec<Effect>,
}

impl SessionHandle {
    /// A handle for session `id` with its card row.
    pub fn new(id: u32, card: Map) -> SessionHandle {
        SessionHandle(Arc::new(Mutex::new(SessionData {
            id: i64::from(id),
            card,
            ..SessionData::default()
        })))
    }

    /// Runs `f` on the data.
    pub fn with<R>(&self, f: impl FnOnce(&mut SessionData) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Takes the effects the last call asked for.
    pub fn take_effects(&self) -> Vec<Effect> {
        self.with(|d| std::mem::take(&mut d.effects))
    }
}

impl Script {
    /// Compiles `text` (from `path`, for messages) with the given limits.
    /// Limits out of range are an error, never clamped: the scenario should say what runs.
    pub fn compile(text: &str, limits: Limits, on_error: OnError) -> Result<Script, CompileError> {
        limits.validate().map_err(|e| CompileError {
            line: None,
            column: None,
            message: format!("script.limits.{}: {e}", e.name),
        })?;
        let engine = engine(limits);
        let ast = engine.compile(text).map_err(|e| CompileError {
            line: e.1.line(),
            column: e.1.position(),
            message: match &*e.0 {
                rhai::ParseErrorType::Reserved(word) if word == "import" => IMPORT_DISABLED.into(),
                other => other.to_string(),
            },
        })?;
        for f in ast.iter_functions() {
            if let Some(hook) = Hook::FIXED.iter().find(|h| h.name() == f.name) {
                check_arity(*hook, f.params.len())?;
            }
        }
        let defined = ast
            .iter_functions()
            .filter(|f| matches!(f.params.len(), 1 | 2))
            .map(|f| Hook {
                name: intern(f.name),
                arity: f.params.len() as u8,
            })
            .collect();
        Ok(Script {
            engine,
            ast,
            defined,
            on_error,
        })
    }

    /// Whether the script defines a hook (by its name and number of parameters).
    pub fn has(&self, hook: Hook) -> bool {
        self.defined.contains(&hook)
    }

    /// Checks that a function named like `hook`, if the script has one, takes the
    /// parameters the hook is called with: a step's hooks are only known by name once the
    /// scenario's steps are.
    pub fn check_hook(&self, hook: Hook) -> Result<(), CompileError> {
        match self.ast.iter_functions().find(|f| f.name == hook.name()) {
            Some(f) => check_arity(hook, f.params.len()),
            None => Ok(()),
        }
    }

    /// Calls a function that takes no arguments (the `.rhai` scenario's `scenario()`).
    pub fn call_plain(&self, name: &str) -> Result<Dynamic, String> {
        self.engine
            .call_fn::<Dynamic>(&mut Scope::new(), &self.ast, name, ())
            .map_err(|e| describe(&e))
    }

    /// Whether the script defines a function by name.
    pub fn defines(&self, name: &str) -> bool {
        self.ast.iter_functions().any(|f| f.name == name)
    }

    /// Calls a hook for a session, with the incoming message for the reply hooks.
    pub fn call(
        &self,
        hook: Hook,
        session: &SessionHandle,
        message: Option<&serde_json::Value>,
    ) -> Result<Dynamic, HookError> {
        let mut scope = Scope::new();
        let handle = Dynamic::from(session.clone());
        let result = match message {
            None => self
                .engine
                .call_fn::<Dynamic>(&mut scope, &self.ast, hook.name(), (handle,)),
            Some(value) => {
                let msg = rhai::serde::to_dynamic(value).map_err(|e| HookError {
                    hook,
                    limit: false,
                    message: e.to_string(),
                })?;
                self.engine
                    .call_fn::<Dynamic>(&mut scope, &self.ast, hook.name(), (handle, msg))
            }
        };
        result.map_err(|e| HookError {
            hook,
            limit: is_limit(&e),
            message: describe(&e),
        })
    }
}

/// A hook's function must take the parameters it is called with.
fn check_arity(hook: Hook, params: usize) -> Result<(), CompileError> {
    if params == hook.arity() {
        return Ok(());
    }
    Err(CompileError {
        line: None,
        column: None,
        message: format!(
            "hook `{}` takes {} parameter(s) ({}), not {}",
            hook.name(),
            hook.arity(),
            if hook.arity() == 1 {
                "session"
            } else {
                "session, msg"
            },
            params
        ),
    })
}

/// Turns a message hook's return value into message text.
pub fn message_text(value: &Dynamic) -> Result<String, String> {
    if let Some(text) = value.clone().try_cast::<rhai::ImmutableString>() {
        return Ok(text.to_string());
    }
    if value.is_map() || value.is_array() {
        return serde_json::to_string(value).map_err(|e| e.to_string());
    }
    Err(format!(
        "must return a map (sent as JSON) or a string, not {}",
        value.type_name()
    ))
}

/// Turns a reply hook's return value into match / reject / not the reply.
pub fn verdict(value: &Dynamic) -> Result<Option<bool>, String> {
    if value.is_unit() {
        return Ok(None);
    }
    value.as_bool().map(Some).map_err(|t| {
        format!("must return true (matched), false (rejected) or () (not the reply), not {t}")
    })
}

fn is_limit(e: &EvalAltResult) -> bool {
    use EvalAltResult as E;
    match e {
        E::ErrorTooManyOperations(_)
        | E::ErrorDataTooLarge(..)
        | E::ErrorStackOverflow(_)
        | E::ErrorTooManyModules(_) => true,
        E::ErrorInFunctionCall(_, _, inner, _) => is_limit(inner),
        _ => false,
    }
}

fn describe(e: &EvalAltResult) -> String {
    let position = e.position();
    match position.line() {
        Some(line) => format!(
            "line {line}: {}",
            e.to_string().split(" (line").next().unwrap_or("")
        ),
        None => e.to_string(),
    }
}

/// Why `import` fails. Hooks are pure functions of their arguments, and a scenario is the
/// files it names; a module resolver would read any `.rhai` file the process can reach
/// (`import "../../x"`), and restricting it to one folder would still follow symlinks.
const IMPORT_DISABLED: &str =
    "`import` is disabled: a script cannot read other files; put the functions it needs in \
     this file";

/// The sandboxed engine: limits on, `eval` and `import` off, output discarded, helpers
/// registered.
fn engine(limits: Limits) -> Engine {
    let mut engine = Engine::new();
    // Belt and braces: with `import` a reserved word the parser rejects it, and with no
    // resolver an import that got past it would still find nothing.
    engine.set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
    engine
        .set_max_operations(limits.max_operations)
        .set_max_string_size(limits.max_string_size)
        .set_max_array_size(limits.max_array_size)
        .set_max_map_size(limits.max_map_size)
        .set_max_call_levels(limits.max_call_levels)
        .set_max_expr_depths(64, 32)
        .disable_symbol("eval")
        .disable_symbol("import")
        .on_print(|_| {})
        .on_debug(|_, _, _| {});
    engine
        .register_type_with_name::<SessionHandle>("Session")
        .register_get("id", |s: &mut SessionHandle| s.with(|d| d.id))
        .register_get("connects", |s: &mut SessionHandle| s.with(|d| d.connects))
        .register_get("card", |s: &mut SessionHandle| s.with(|d| d.card.clone()))
        .register_get_set(
            "state",
            |s: &mut SessionHandle| s.with(|d| d.state.clone()),
            |s: &mut SessionHandle, state: Map| s.with(|d| d.state = state),
        )
        .register_fn("count", |s: &mut SessionHandle, name: &str| {
            s.with(|d| d.effects.push(Effect::Count(name.to_owned())))
        })
        .register_fn("record", |s: &mut SessionHandle, name: &str, ms: f64| {
            s.with(|d| d.effects.push(Effect::Record(name.to_owned(), ms)))
        })
        .register_fn("record", |s: &mut SessionHandle, name: &str, ms: i64| {
            s.with(|d| d.effects.push(Effect::Record(name.to_owned(), ms as f64)))
        })
        .register_fn("reconnect", |s: &mut SessionHandle| {
            s.with(|d| d.effects.push(Effect::Reconnect))
        })
        .register_fn("leave", |s: &mut SessionHandle| {
            s.with(|d| d.effects.push(Effect::Leave))
        })
        .register_fn("fail", |s: &mut SessionHandle| {
            s.with(|d| d.effects.push(Effect::Fail))
        });
    engine
        .register_fn("now_ms", || -> i64 {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_millis() as i64
        })
        .register_fn("env", |name: &str| -> Dynamic {
            std::env::var(name).map_or(Dynamic::UNIT, Dynamic::from)
        })
        .register_fn("hmac_sha256", |key: &str, message: &str| -> String {
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
            hex(ring::hmac::sign(&key, message.as_bytes()).as_ref())
        })
        .register_fn("sha256", |message: &str| -> String {
            hex(ring::digest::digest(&ring::digest::SHA256, message.as_bytes()).as_ref())
        });
    engine
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn script(text: &str) -> Script {
        Script::compile(text, Limits::default(), OnError::Reconnect).unwrap()
    }

    #[test]
    fn hooks_build_messages_and_judge_replies() {
        let s = script(
            r#"
            fn heartbeat(session) { #{type: "heartBeat", n: session.id} }
            fn auth_reply(session, msg) {
                if msg.msgType != "auth_ack" { return (); }
                msg.code == "200"
            }
            "#,
        );
        assert!(
            s.has(Hook::HEARTBEAT) && s.has(Hook::judge("auth")) && !s.has(Hook::build("auth"))
        );
        let session = SessionHandle::new(7, Map::new());
        let msg = s.call(Hook::HEARTBEAT, &session, None).unwrap();
        let v: serde_json::Value = serde_json::from_str(&message_text(&msg).unwrap()).unwrap();
        assert_eq!(v, json!({"type": "heartBeat", "n": 7}));
        let judge = |m: serde_json::Value| {
            verdict(&s.call(Hook::judge("auth"), &session, Some(&m)).unwrap()).unwrap()
        };
        assert_eq!(
            judge(json!({"msgType": "auth_ack", "code": "200"})),
            Some(true)
        );
        assert_eq!(
            judge(json!({"msgType": "auth_ack", "code": "401"})),
            Some(false)
        );
        assert_eq!(judge(json!({"msgType": "push"})), None);
    }

    #[test]
    fn state_persists_and_effects_are_collected() {
        let s = script(
            r#"
            fn bind_card(session) {
                let st = session.state;
                st.binds = (st.binds ?? 0) + 1;
                session.state = st;
                session.count("binds");
                session.record("think", 12);
                "bind"
            }
            "#,
        );
        let session = SessionHandle::new(1, Map::new());
        for _ in 0..3 {
            let _ = s.call(Hook::build("bind_card"), &session, None).unwrap();
        }
        assert_eq!(session.with(|d| d.state["binds"].as_int().unwrap()), 3);
        let effects = session.take_effects();
        assert_eq!(effects.len(), 6);
        assert_eq!(effects[0], Effect::Count("binds".into()));
        assert_eq!(effects[1], Effect::Record("think".into(), 12.0));
    }

    #[test]
    fn endless_loops_hit_the_operation_limit() {
        let s = script("fn heartbeat(session) { loop { } }");
        let e = s
            .call(Hook::HEARTBEAT, &SessionHandle::new(0, Map::new()), None)
            .unwrap_err();
        assert!(e.limit, "{e:?}");
    }

    #[test]
    fn errors_name_the_line() {
        let e = Script::compile(
            "fn auth(session) {\n  let x = ;\n}",
            Limits::default(),
            OnError::Ignore,
        )
        .err()
        .unwrap();
        assert_eq!(e.line, Some(2));
        let s = script("fn auth(session) {\n  let x = 1;\n  x.nope()\n}");
        let e = s
            .call(
                Hook::build("auth"),
                &SessionHandle::new(0, Map::new()),
                None,
            )
            .unwrap_err();
        assert!(e.message.contains("line 3"), "{}", e.message);
        assert!(!e.limit);
        let e = Script::compile(
            "fn heartbeat(a, b) { 1 }",
            Limits::default(),
            OnError::Ignore,
        )
        .err()
        .unwrap();
        assert!(e.message.contains("takes 1 parameter"), "{}", e.message);
    }

    #[test]
    fn eval_is_disabled_and_helpers_work() {
        assert!(Script::compile(
            r#"fn auth(s) { eval("1") }"#,
            Limits::default(),
            OnError::Ignore
        )
        .is_err());
        let s = script(
            r#"fn auth(s) { hmac_sha256("key", "The quick brown fox jumps over the lazy dog") }"#,
        );
        let out = s
            .call(
                Hook::build("auth"),
                &SessionHandle::new(0, Map::new()),
                None,
            )
            .unwrap();
        assert_eq!(
            out.into_string().unwrap(),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    fn limits(name: &str, value: u64) -> Limits {
        let mut l = Limits::default();
        match name {
            "max_operations" => l.max_operations = value,
            "max_string_size" => l.max_string_size = value as usize,
            "max_array_size" => l.max_array_size = value as usize,
            "max_map_size" => l.max_map_size = value as usize,
            "max_call_levels" => l.max_call_levels = value as usize,
            _ => unreachable!("{name}"),
        }
        l
    }

    #[test]
    fn limits_outside_their_range_are_refused() {
        assert_eq!(Limits::default().validate(), Ok(()));
        for (name, floor, ceiling, _) in LIMIT_RANGES {
            for ok in [floor, ceiling] {
                assert_eq!(limits(name, ok).validate(), Ok(()), "{name}={ok}");
            }
            for bad in [0, floor - 1, ceiling + 1, u32::MAX as u64] {
                let e = limits(name, bad).validate().unwrap_err();
                assert_eq!((e.name, e.value), (name, bad));
                let text = e.to_string();
                assert!(
                    text.contains(&format!("between {floor} and {ceiling}")),
                    "{text}"
                );
            }
            let e = Script::compile("1", limits(name, 0), OnError::Ignore)
                .err()
                .unwrap();
            assert!(e.message.contains("unlimited"), "{}", e.message);
        }
    }

    /// Each limit at its ceiling still stops a script that goes past it, with an error
    /// counted as a limit: no hang, no unbounded allocation, no stack overflow.
    #[test]
    fn limits_at_their_ceiling_are_enforced() {
        let ceiling = |name: &str| LIMIT_RANGES.iter().find(|r| r.0 == name).unwrap().2;
        let mut top = Limits {
            max_operations: ceiling("max_operations"),
            max_string_size: ceiling("max_string_size") as usize,
            max_array_size: ceiling("max_array_size") as usize,
            max_map_size: ceiling("max_map_size") as usize,
            max_call_levels: ceiling("max_call_levels") as usize,
        };
        let cases = [
            "fn auth(s) { loop { } }",
            // Doubling reaches 16 MiB in 24 steps, well within the operation limit.
            r#"fn auth(s) { let x = "ab"; loop { x += x; } }"#,
            "fn auth(s) { let a = [0]; loop { a += a; } }",
            "fn auth(s) { let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; } }",
            "fn f(n) { f(n + 1) } fn auth(s) { f(0) }",
        ];
        for (i, text) in cases.iter().enumerate() {
            if i == 3 {
                // A million map keys take longer than a million operations allow, so
                // this case proves the map limit at a ceiling it can reach.
                top.max_map_size = 10_000;
            }
            let s = Script::compile(text, top, OnError::Ignore).unwrap();
            let e = on_script_stack(|| {
                s.call(
                    Hook::build("auth"),
                    &SessionHandle::new(0, Map::new()),
                    None,
                )
            })
            .unwrap()
            .unwrap_err();
            assert!(e.limit, "{text}: {e:?}");
        }
    }

    #[test]
    fn recursion_at_the_ceiling_fits_the_script_stack() {
        // The recursive call sits inside nested `switch`es: the most stack per call level
        // measured. The ceiling is reached exactly, and one level more is an error.
        let depth = LIMIT_RANGES[4].2;
        let open = "switch n { _ => ".repeat(11);
        let close = " }".repeat(11);
        let text = format!(
            "fn f(n) {{ if n <= 1 {{ 0 }} else {{ {open} 1 + f(n - 1) {close} }} }}\n\
             fn auth(s) {{ f(s.id) }}"
        );
        let limits = Limits {
            max_call_levels: depth as usize,
            max_operations: 1_000_000,
            ..Limits::default()
        };
        let s = Script::compile(&text, limits, OnError::Ignore).unwrap();
        let call = |levels: u64| {
            on_script_stack(|| {
                s.call(
                    Hook::build("auth"),
                    &SessionHandle::new(levels as u32, Map::new()),
                    None,
                )
            })
            .unwrap()
        };
        // f(n) .. f(1) are n call levels (the hook itself is not counted).
        let deepest = call(depth).unwrap();
        assert_eq!(deepest.as_int().unwrap(), depth as i64 - 1);
        assert!(call(depth + 1).unwrap_err().limit);
    }

    #[test]
    fn import_is_refused() {
        let e = Script::compile(
            "import \"other\" as o;\nfn auth(s) { o::x() }",
            Limits::default(),
            OnError::Ignore,
        )
        .err()
        .unwrap();
        assert_eq!(e.line, Some(1));
        assert!(e.message.contains("`import` is disabled"), "{}", e.message);
        let e = Script::compile(
            "fn auth(s) {\n  import \"/etc/passwd\";\n 1 }",
            Limits::default(),
            OnError::Ignore,
        )
        .err()
        .unwrap();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("`import` is disabled"), "{}", e.message);
    }
}
