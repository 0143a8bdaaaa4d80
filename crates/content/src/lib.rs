//! Clarion's content: per-channel rendering of posts with handlebars, and the
//! "content as code" post files (`content/posts/**/*.md`).
//!
//! Invariants: this crate never touches the network, the database or the
//! clock. Rendering is a pure function of the post, the templates and the
//! channel, so a plan made ahead of time is exactly what gets published.

mod error;
mod files;
mod helpers;
mod ids;
mod library;
mod markdown;
mod media;
mod media_dir;
mod plan;
mod post;

pub use error::ContentError;
pub use ids::{MAX_ID_LEN, check_ids, is_valid_id, with_id, write_id};
pub use library::{ChannelInfo, ContentLibrary, PostSource};
pub use markdown::{
    ALLOWED_SCHEMES, allowed_url, to_html as markdown_to_html,
    to_html_blocks as markdown_to_html_blocks, to_plain as markdown_to_plain,
};
pub use media::{KNOWN_EXTENSIONS, describe as describe_media, mime_for};
pub use media_dir::{MediaDir, UPLOADS as MEDIA_UPLOADS};
pub use plan::{
    PlannedTarget, Step as RenderStep, plan_file, render_targets, render_targets_by_step,
    split_thread,
};
pub use post::{
    FRONT_MATTER_KEYS, PostFile, load_post_dir, load_post_dir_in, parse_post_file,
    parse_post_file_in,
};
