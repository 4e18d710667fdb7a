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

#[test]
fn a_batch_of_appends_folds_per_task_as_if_appended_one_by_one() {
    let (a, b) = (TaskId::generate(), TaskId::generate());
    let append = |id, at, event| store::TaskWrite::Append { id, at, event };
    let writes = [
        append(a, 1, TaskEvent::Accepted { remote_id: None }),
        append(b, 2, TaskEvent::Retrying { reason: "x".into() }),
        append(a, 3, TaskEvent::Completed { output: json!("done") }),
        append(a, 4, TaskEvent::Canceled),
    ];
    let folded = store::fold_appends(&writes);
    let ids: Vec<TaskId> = folded.iter().map(|f| f.id).collect();
    assert_eq!(ids, [a, b]);
    let positions: Vec<usize> = folded[0].events.iter().map(|(p, _, _)| *p).collect();
    assert_eq!((positions, folded[0].refused.clone()), (vec![0, 2], vec![3]));
    assert_eq!((folded[0].effects.state, folded[0].at, folded[0].finished), (Some(TaskState::Completed), 3, true));
    assert_eq!(folded[0].effects.output, Some(json!("done")));
    assert_eq!((folded[1].effects.state, folded[1].finished, folded[1].at), (None, false, 2));
}
