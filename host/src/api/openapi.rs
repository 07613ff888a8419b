//! What `/openapi.json` says about errors: every operation answers its
//! errors as RFC 9457 problem+json, documented once here and attached to
//! every path. Documentation only; never handles a request.

use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};

/// An RFC 9457 problem, as every error of this service is answered.
#[derive(utoipa::ToSchema)]
#[schema(as = Problem)]
#[allow(dead_code)] // documents the JSON `Problem::into_response` writes
pub struct ProblemDoc {
    /// `urn:actiongate:problem:<slug>`; the slug names the rule or the failure.
    #[schema(rename = "type", example = "urn:actiongate:problem:invalid-kind")]
    kind: String,
    /// Says what was wrong, the same for every problem of this `type`.
    title: String,
    status: u16,
    /// This occurrence: the field, the value's position, the rule.
    detail: String,
}

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

fn problem_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_CONTENT_TYPE,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

/// Gives every documented error response the problem+json body, and every
/// operation the `4XX` and `5XX` problems any route can answer (a bad
/// method, a body too large, a store that is down).
pub struct ProblemResponses;

impl utoipa::Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                for (code, response) in responses.iter_mut() {
                    let is_error = code.starts_with('4') || code.starts_with('5');
                    if let (true, RefOr::T(response)) = (is_error, response) {
                        if response.content.is_empty() {
                            *response = problem_response(&response.description);
                        }
                    }
                }
                responses.entry("4XX".into()).or_insert_with(|| {
                    RefOr::T(problem_response(
                        "The request was refused (problem+json names why)",
                    ))
                });
                responses.entry("5XX".into()).or_insert_with(|| {
                    RefOr::T(problem_response(
                        "The service could not answer; nothing was decided",
                    ))
                });
            }
        }
    }
}
