//! The Procfile's `web:` line, the start command wherever one exists.

use super::{PlanError, Tree};

/// The command of the `web` process type, if the tree has a Procfile with one.
pub(crate) fn web_command(tree: &Tree) -> Result<Option<String>, PlanError> {
    let Some(text) = tree.read_optional("Procfile")? else {
        return Ok(None);
    };
    Ok(parse_web(&text))
}

fn parse_web(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let (name, command) = line.split_once(':')?;
        let command = command.trim();
        (name.trim() == "web" && !command.is_empty()).then(|| command.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::parse_web;

    #[test]
    fn finds_the_web_line_among_others() {
        let text =
            "# processes\nworker: celery -A app\nweb:  gunicorn app:app --bind 0.0.0.0:$PORT \n";
        assert_eq!(
            parse_web(text).as_deref(),
            Some("gunicorn app:app --bind 0.0.0.0:$PORT")
        );
        assert_eq!(parse_web("worker: x\n"), None);
        assert_eq!(parse_web("web:\n"), None);
        assert_eq!(parse_web("webby: x\n"), None);
    }
}
