//! The gateway's rules over the in-memory ports: validation, choice, failover, timeouts.

use serde_json::json;

use super::*;

fn input(value: serde_json::Value) -> TaskInput {
    serde_json::from_value(value).expect("a task input")
}

fn pointers(e: RegistryError) -> Vec<String> {
    e.fields().into_iter().map(|f| f.pointer).collect()
}

#[test]
fn a_request_names_exactly_one_target_and_an_input() {
    let ok = input(json!({"capability": "echo", "input": "hi"})).validate().expect("valid");
    assert_eq!(ok.target, TaskTarget::Capability("echo".into()));
    assert_eq!((ok.timeout_seconds, ok.wait_seconds), (60, 5));
    let both = input(json!({"capability": "echo", "tool": "x", "input": {}})).validate().unwrap_err();
    assert_eq!(pointers(both), ["/capability"]);
    let none = input(json!({})).validate().unwrap_err();
    assert_eq!(pointers(none), ["/capability", "/input"]);
}

#[test]
fn every_bad_field_is_reported_with_its_pointer() {
    let bad = input(json!({
        "agentId": "nope", "input": 3, "protocol": "SMTP", "timeoutSeconds": 0, "waitSeconds": 31
    }))
    .validate()
    .unwrap_err();
    assert_eq!(pointers(bad), ["/agentId", "/input", "/protocol", "/timeoutSeconds", "/waitSeconds"]);
    let long = input(json!({"tool": "x".repeat(300), "input": "a", "metadata": {"k": "v".repeat(20_000)}}))
        .validate()
        .unwrap_err();
    assert_eq!(pointers(long), ["/tool", "/metadata"]);
}

#[test]
fn events_set_the_state_a_task_is_in() {
    assert_eq!(TaskEvent::Accepted { remote_id: None }.effects().state, Some(TaskState::Working));
    let done = TaskEvent::Completed { output: json!("ok") }.effects();
    assert_eq!((done.state, done.output), (Some(TaskState::Completed), Some(json!("ok"))));
    assert_eq!(TaskEvent::Retrying { reason: "x".into() }.effects(), TaskEffects::default());
    let logged = serde_json::to_value(TaskEvent::Failed { code: "c".into(), detail: "d".into() }).unwrap();
    assert_eq!(logged, json!({"type": "failed", "code": "c", "detail": "d"}));
}
