//! A static site: `index.html` at the root or in a build output folder,
//! served by busybox httpd from the static base image.

use super::containerfile::Writer;
use super::{
    BuildPlan, Containerfile, PlanError, PlanSettings, Stack, StartCommand, StartSource, Tree,
    DEFAULT_PORT,
};

/// Folders a site generator or bundler conventionally writes to.
pub(crate) const OUTPUT_DIRS: [&str; 6] = ["public", "dist", "build", "_site", "site", "www"];

const WEB_ROOT: &str = "/srv/www";

/// Shell step that copies the first output folder holding an `index.html` to /out.
pub(crate) const COLLECT_OUTPUT: &str = "mkdir -p /out && for d in dist build out public _site site www; do \
     if [ -f \"$d/index.html\" ]; then cp -a \"$d/.\" /out/ && exit 0; fi; done; \
     echo 'the build wrote no index.html to dist/, build/, out/, public/, _site/, site/ or www/' >&2; exit 1";

pub(crate) fn server_command() -> StartCommand {
    StartCommand {
        command: format!("busybox httpd -f -v -p 0.0.0.0:$PORT -h {WEB_ROOT}"),
        source: StartSource::Stack,
    }
}

/// The final stage: the file server with the site in its web root;
/// `source` is what to COPY, e.g. `public/` or `--from=build /out/`.
/// The file server runs as the app user; the files stay root's, readable.
pub(crate) fn serve_stage(w: &mut Writer, image: &str, source: &str) {
    w.from(image, None)
        .port()
        .start(&server_command().command)
        .app_user(None)
        .line(format!("COPY {source} {WEB_ROOT}/"))
        .run_as_app();
}

pub(crate) fn detect(
    tree: &Tree,
    settings: &PlanSettings,
    _web: Option<&str>,
) -> Result<Option<BuildPlan>, PlanError> {
    let root = if tree.is_file("index.html") {
        ""
    } else {
        match OUTPUT_DIRS
            .into_iter()
            .find(|d| tree.is_dir(d) && tree.is_file(&format!("{d}/index.html")))
        {
            Some(dir) => dir,
            None => return Ok(None),
        }
    };
    let mut w = Writer::new("static");
    let source = if root.is_empty() {
        ".".to_string()
    } else {
        format!("{root}/")
    };
    serve_stage(&mut w, &settings.base_images.static_site, &source);
    let index = if root.is_empty() {
        "index.html".to_string()
    } else {
        format!("{root}/index.html")
    };
    Ok(Some(BuildPlan {
        stack: Stack::Static,
        containerfile: Containerfile::Generated { text: w.finish() },
        detected_from: vec![index],
        base_image: Some(settings.base_images.static_site.clone()),
        runtime: None,
        package_manager: None,
        install_command: None,
        build_command: None,
        start: Some(server_command()),
        build_args: settings.build_args.clone(),
        ignore: Vec::new(),
        port: DEFAULT_PORT,
        notes: Vec::new(),
    }))
}
