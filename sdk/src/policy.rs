//! The policy world: generated bindings, the [`Policy`] trait and
//! [`export_policy!`](crate::export_policy).

pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "policy",
        pub_export_macro: true,
        export_macro_name: "__export_policy_world",
        default_bindings_module: "freeway_sdk::policy::bindings",
        runtime_path: "freeway_sdk::wit_bindgen::rt",
    });
}

pub use bindings::exports::freeway::gateway::policy_api::{Candidate, Choice, Features, Headroom, TaskClass};
pub use bindings::freeway::gateway::types::{Capabilities, LogLevel};

/// What a routing policy implements.
pub trait Policy {
    /// Order the candidates for one request, best first; leave out those not to try.
    fn rank(request: Features, candidates: Vec<Candidate>) -> Vec<Choice>;
}

/// Export a [`Policy`] implementation as the component's `policy-api`.
#[macro_export]
macro_rules! export_policy {
    ($t:ty) => {
        #[doc(hidden)]
        pub struct __FreewayPolicyExport;
        impl $crate::policy::bindings::exports::freeway::gateway::policy_api::Guest for __FreewayPolicyExport {
            fn rank(request: $crate::policy::Features, candidates: Vec<$crate::policy::Candidate>) -> Vec<$crate::policy::Choice> {
                <$t as $crate::Policy>::rank(request, candidates)
            }
        }
        // Only wasm builds export symbols; native builds (unit tests) just type-check the impl.
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            $crate::policy::bindings::__export_policy_world!(__FreewayPolicyExport with_types_in $crate::policy::bindings);
        };
    };
}

/// The `messages` JSON of the request being ranked (read on demand from the host).
pub fn messages_json() -> String {
    bindings::freeway::gateway::request::messages_json()
}

/// Log through the host.
pub fn log(level: LogLevel, message: &str) {
    bindings::freeway::gateway::log::log(level, message);
}

/// The classifier's probability per task class, most likely first, read from `signals`
/// (`classes: reasoning 0.62, general 0.31`, the classes above 2 %). Empty when the host sent
/// none (a host without the learned classifier).
pub fn class_probabilities(request: &Features) -> Vec<(TaskClass, f32)> {
    let Some(list) = request.signals.iter().find_map(|s| s.strip_prefix("classes: ")) else {
        return Vec::new();
    };
    list.split(", ")
        .filter_map(|item| {
            let (name, p) = item.rsplit_once(' ')?;
            Some((task_class(name)?, p.parse().ok()?))
        })
        .collect()
}

/// A task class by the name the host uses (`tool-use`, `general`, ...).
pub fn task_class(name: &str) -> Option<TaskClass> {
    Some(match name {
        "general" => TaskClass::General,
        "code" => TaskClass::Code,
        "math" => TaskClass::Math,
        "reasoning" => TaskClass::Reasoning,
        "creative" => TaskClass::Creative,
        "extraction" => TaskClass::Extraction,
        "vision" => TaskClass::Vision,
        "tool-use" => TaskClass::ToolUse,
        _ => return None,
    })
}
