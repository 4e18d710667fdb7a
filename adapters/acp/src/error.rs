//! ACP `Error` objects (ACP 0.2.0 OpenAPI `components.schemas.Error`): what an ACP client reads
//! from a failed answer, built from the registry's RFC 9457 problem.

use serde_json::{Map, Value};

/// ACP's error code for an HTTP status: `not_found` for 404, `invalid_input` for the other
/// client errors, `server_error` for the rest (the spec's `ErrorCode` has these three only).
pub fn error_code(status: u16) -> &'static str {
    match status {
        404 => "not_found",
        400..=499 => "invalid_input",
        _ => "server_error",
    }
}

/// A problem body (`{type, title, status, detail, code, errors}`) as an ACP `Error`:
/// `code` becomes ACP's code for `status`, `message` the problem's `detail` (else its `title`),
/// and `data` holds the registry's own code (`{"code": "agent_not_found"}`). The other problem
/// members stay beside them, so the body is still a problem document; its `type` names the
/// registry's code too.
pub fn error_object(status: u16, mut problem: Map<String, Value>) -> Value {
    let registry_code = problem.remove("code");
    let message = ["detail", "title"]
        .iter()
        .find_map(|k| problem.get(*k).and_then(Value::as_str))
        .unwrap_or("the request failed")
        .to_owned();
    let mut data = Map::new();
    if let Some(code) = registry_code {
        data.insert("code".to_owned(), code);
    }
    let mut error = Map::new();
    error.insert("code".to_owned(), Value::from(error_code(status)));
    error.insert("message".to_owned(), Value::from(message));
    error.insert("data".to_owned(), Value::Object(data));
    error.extend(problem);
    Value::Object(error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_problem_becomes_an_acp_error_with_the_problem_members_beside_it() {
        let problem = json!({"type": "urn:agent-registry:problem:agent_not_found", "title": "Not Found",
            "status": 404, "detail": "no agent named x", "code": "agent_not_found", "errors": []});
        let Value::Object(problem) = problem else { unreachable!() };
        let error = error_object(404, problem);
        assert_eq!(error["code"], "not_found");
        assert_eq!(error["message"], "no agent named x");
        assert_eq!(error["data"], json!({"code": "agent_not_found"}));
        assert_eq!(error["status"], 404);
        assert_eq!(
            [error_code(400), error_code(429), error_code(503)],
            ["invalid_input", "invalid_input", "server_error"]
        );
    }
}
