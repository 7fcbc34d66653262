//! The `/queen/ctl` lines behind the console's `SPAWN` and `KILL` verbs and
//! the shell's `bind` and `mount`: one JSON object each (SURFACES §4).
//!
//! Both the hive (answering `SPAWN` on the console) and `cohsh` (writing
//! `/queen/ctl` over 9P) build these lines, so they live here, next to the
//! grammar that produces their arguments. Only the shape is checked here —
//! known keys, numbers that fit `u32`; the hive judges the values.

/// Why `SPAWN` arguments cannot become a control line; the text is what
/// the console answers as `error=`.
pub type CtlError = &'static str;

/// The control line for `SPAWN <kind> key=value ...`.
///
/// `heartbeat` takes `ticks` (required), `ttl_s` and `ops`, which become
/// the `budget`; `gpu` takes `gpu_id`, `mem_mb`, `streams`, `ttl_s` and
/// `priority`, which become the `lease`. Keys keep the order given.
pub fn spawn_json(kind: &str, args: &[(String, String)]) -> Result<String, CtlError> {
    match kind {
        "heartbeat" => heartbeat(args),
        "gpu" => gpu(args),
        _ => Err("spawn heartbeat or gpu"),
    }
}

fn number(value: &str) -> Result<u32, CtlError> {
    value.parse::<u32>().map_err(|_| "values must be numbers")
}

fn field(key: &str, value: impl std::fmt::Display) -> String {
    format!("{}:{value}", json_string(key))
}

fn heartbeat(args: &[(String, String)]) -> Result<String, CtlError> {
    let mut ticks = None;
    let mut budget = Vec::new();
    for (key, value) in args {
        match key.as_str() {
            "ticks" => ticks = Some(number(value)?),
            "ttl_s" | "ops" => budget.push(field(key, number(value)?)),
            _ => return Err("heartbeat takes ticks= ttl_s= ops="),
        }
    }
    let ticks = ticks.ok_or("heartbeat needs ticks=")?;
    let mut line = format!("{{\"spawn\":\"heartbeat\",\"ticks\":{ticks}");
    if !budget.is_empty() {
        line.push_str(&format!(",\"budget\":{{{}}}", budget.join(",")));
    }
    line.push('}');
    Ok(line)
}

fn gpu(args: &[(String, String)]) -> Result<String, CtlError> {
    let mut lease = Vec::new();
    for (key, value) in args {
        let value = match key.as_str() {
            "gpu_id" => json_string(value),
            "mem_mb" | "streams" | "ttl_s" | "priority" => number(value)?.to_string(),
            _ => return Err("gpu takes gpu_id= mem_mb= streams= ttl_s= priority="),
        };
        lease.push(field(key, value));
    }
    Ok(format!(
        "{{\"spawn\":\"gpu\",\"lease\":{{{}}}}}",
        lease.join(",")
    ))
}

/// `{"kill":"<id>"}`.
pub fn kill_json(id: &str) -> String {
    format!("{{\"kill\":{}}}", json_string(id))
}

/// `{"bind":{"from":"<from>","to":"<to>"}}`.
pub fn bind_json(from: &str, to: &str) -> String {
    format!(
        "{{\"bind\":{{\"from\":{},\"to\":{}}}}}",
        json_string(from),
        json_string(to)
    )
}

/// `{"mount":{"service":"<service>","at":"<at>"}}`.
pub fn mount_json(service: &str, at: &str) -> String {
    format!(
        "{{\"mount\":{{\"service\":{},\"at\":{}}}}}",
        json_string(service),
        json_string(at)
    )
}

/// `text` as a JSON string literal, quotes included.
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn heartbeat_spawn_matches_the_transcript_line() {
        let line = spawn_json("heartbeat", &args(&[("ticks", "3")]));
        assert_eq!(line.as_deref(), Ok(r#"{"spawn":"heartbeat","ticks":3}"#));
        let with_budget = spawn_json(
            "heartbeat",
            &args(&[("ticks", "100"), ("ttl_s", "120"), ("ops", "500")]),
        );
        assert_eq!(
            with_budget.as_deref(),
            Ok(r#"{"spawn":"heartbeat","ticks":100,"budget":{"ttl_s":120,"ops":500}}"#)
        );
    }

    #[test]
    fn gpu_spawn_becomes_a_lease() {
        let line = spawn_json(
            "gpu",
            &args(&[
                ("gpu_id", "GPU-0"),
                ("mem_mb", "4096"),
                ("streams", "2"),
                ("ttl_s", "120"),
            ]),
        );
        let expected = concat!(
            r#"{"spawn":"gpu","lease":{"gpu_id":"GPU-0","#,
            r#""mem_mb":4096,"streams":2,"ttl_s":120}}"#
        );
        assert_eq!(line.as_deref(), Ok(expected));
    }

    #[test]
    fn bad_spawn_arguments_are_refused() {
        assert!(spawn_json("heartbeat", &args(&[])).is_err());
        assert!(spawn_json("heartbeat", &args(&[("ticks", "x")])).is_err());
        assert!(spawn_json("heartbeat", &args(&[("ticks", "-1")])).is_err());
        assert!(spawn_json("heartbeat", &args(&[("ticks", "1"), ("mem", "1")])).is_err());
        assert!(spawn_json("gpu", &args(&[("ticks", "1")])).is_err());
        assert!(spawn_json("bus", &args(&[("ticks", "1")])).is_err());
    }

    #[test]
    fn strings_are_escaped() {
        assert_eq!(kill_json("worker-7"), r#"{"kill":"worker-7"}"#);
        assert_eq!(kill_json("a\"b\\c\n"), r#"{"kill":"a\"b\\c\n"}"#);
        assert_eq!(json_string("\u{1}"), r#""\u0001""#);
        assert_eq!(
            bind_json("/shard", "/shadow"),
            r#"{"bind":{"from":"/shard","to":"/shadow"}}"#
        );
        assert_eq!(
            mount_json("logs", "/log"),
            r#"{"mount":{"service":"logs","at":"/log"}}"#
        );
    }
}
