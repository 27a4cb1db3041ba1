use super::*;

fn task(prompt: &str) -> Task {
    classify(&Input { prompt, ..Input::default() }).task
}

fn rules(prompt: &str) -> Classification {
    classify_with(None, &Input { prompt, ..Input::default() }, false)
}

#[test]
fn the_built_in_model_loads_with_this_builds_features() {
    let m = load(None).expect("built-in model");
    assert_eq!(m.features, FEATURES);
    assert!(current().is_some());
}

#[test]
fn common_prompts_land_in_their_class() {
    assert_eq!(task("Write a Python function that reverses a linked list"), Task::Code);
    assert_eq!(task("```rust\nfn main() { let x = 5; }\n```\nwhy does this not compile?"), Task::Code);
    assert_eq!(task("Solve for x: 3x + 5 = 20"), Task::Math);
    assert_eq!(task("What is the derivative of sin(x) * x^2?"), Task::Math);
    assert_eq!(task("Write a haiku about autumn leaves"), Task::Creative);
    assert_eq!(
        task(
            "Extract every person's name and date from the following email:\n\nHi Ana, the meeting with Tom moved to 4 March. Regards, Lee"
        ),
        Task::Extraction
    );
    assert_eq!(task("hi, how are you today?"), Task::General);
    assert_eq!(task("Escribe un poema sobre el mar"), Task::Creative);
}

#[test]
fn probabilities_sum_to_one_and_the_task_is_the_most_likely() {
    let c = classify(&Input {
        prompt: "Tom is older than Ann, Ann is older than Raj. Who is youngest?",
        ..Input::default()
    });
    let sum: f32 = c.probabilities.iter().sum();
    assert!((sum - 1.0).abs() < 1e-4, "{sum}");
    assert_eq!(c.confidence, c.probabilities[c.task.index()]);
    assert!(c.signals[0].starts_with("classes: "), "{:?}", c.signals);
}

#[test]
fn earlier_turns_give_a_short_follow_up_its_class() {
    let alone = classify(&Input { prompt: "now do it in go", ..Input::default() });
    let after_code = classify(&Input {
        prompt: "now do it in go",
        context: "write a python function that merges two sorted lists\n\ndef merge(a, b):\n    out = []\n    i = j = 0",
        ..Input::default()
    });
    assert_eq!(after_code.task, Task::Code, "{after_code:?}");
    assert!(after_code.probabilities[Task::Code.index()] > alone.probabilities[Task::Code.index()]);
}

#[test]
fn an_explanation_names_the_words_that_weighed() {
    let c = classify_with(
        current().as_deref(),
        &Input { prompt: "Fix this bug in my JavaScript: ```let a = 1```", ..Input::default() },
        true,
    );
    assert_eq!(c.task, Task::Code);
    assert!(c.signals.iter().any(|s| s.starts_with("word \"")), "{:?}", c.signals);
}

#[test]
fn without_a_model_the_rules_decide_and_the_request_shape_comes_first() {
    let c = classify_with(None, &Input { prompt: "write a poem", tools: true, ..Input::default() }, false);
    assert_eq!(c.task, Task::ToolUse);
    let c = classify_with(None, &Input { prompt: "solve 2+2", images: true, ..Input::default() }, false);
    assert_eq!(c.task, Task::Vision);
    assert_eq!(rules("Write a Python function that reverses a linked list").task, Task::Code);
    let c = rules("Fix this bug in my JavaScript: ```let a = 1```");
    assert!(c.signals.iter().any(|s| s.starts_with("code fence")), "{:?}", c.signals);
}

#[test]
fn keywords_match_whole_words_only() {
    // "summary" is not "sum", "classic" is not "class", "scrapbook" is not "rap"
    let c = rules("a classic summary of the scrapbook");
    assert!(c.signals.iter().all(|s| !s.starts_with("sum ") && !s.starts_with("class ") && !s.starts_with("rap ")));
}

#[test]
fn long_prompts_are_read_at_both_ends_and_cut_on_char_boundaries() {
    let long = format!("{}\n\nnow write a limerick about it", "é".repeat(10_000));
    assert_eq!(task(&long), Task::Creative);
    let c = classify(&Input { prompt: &"日本語".repeat(5_000), system: &"ü".repeat(3_000), ..Input::default() });
    assert!(c.confidence > 0.0);
}

#[test]
fn an_installed_model_is_used_from_the_next_request() {
    let before = current().expect("model");
    install(load(None).expect("built-in"));
    let after = current().expect("model");
    assert!(!Arc::ptr_eq(&before, &after));
}
