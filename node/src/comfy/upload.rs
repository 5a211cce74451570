//! `POST /upload/image`: a multipart form, built by hand (it is four small parts).
//!
//! Fields: `image` (the file, with its name and type), `type=input`, `subfolder`
//! (optional), `overwrite=false`. ComfyUI answers `{"name", "subfolder", "type"}`; the
//! name differs from the one sent when another file already had it (`x (1).png`);
//! identical bytes under the same name get the same name back. Without an `image`
//! part it answers 400 with an empty body.

use serde_json::Value;

use super::error::{ComfyError, error_body};
use super::{Inner, UploadedImage};

/// Longest file or subfolder name accepted.
const MAX_NAME_BYTES: usize = 255;

impl Inner {
    pub(crate) async fn upload_image(
        &self,
        file_name: &str,
        bytes: Vec<u8>,
        subfolder: Option<&str>,
    ) -> Result<UploadedImage, ComfyError> {
        check_name("upload file name", file_name, false)?;
        if let Some(subfolder) = subfolder {
            check_name("upload subfolder", subfolder, true)?;
        }
        let boundary = format!("reelmesh-{}", uuid::Uuid::new_v4().simple());
        let body = multipart_body(&boundary, file_name, &bytes, subfolder);
        let url = self.url("/upload/image");
        let response = self
            .http
            .post(&url)
            .header(
                reqwest::header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .map_err(|err| self.unreachable(&err))?;
        let status = response.status();
        let answer = self.read_body(response, &url, 64 * 1024).await?;
        if status != reqwest::StatusCode::OK {
            return Err(ComfyError::Http {
                url,
                status: status.as_u16(),
                body: error_body(&answer),
            });
        }
        parse_uploaded(&url, &answer)
    }
}

/// Names go into a header line and become paths on the server: no separators, no
/// `..`, no quotes or control characters. A subfolder may have `/` between parts.
fn check_name(what: &str, name: &str, is_folder: bool) -> Result<(), ComfyError> {
    let bad = |why: &str| {
        Err(ComfyError::BadInput {
            reason: format!("{what} '{name}': {why}"),
        })
    };
    if name.is_empty() && !is_folder {
        return bad("empty");
    }
    if name.len() > MAX_NAME_BYTES {
        return bad("too long");
    }
    if name
        .chars()
        .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        return bad("quotes, backslashes and control characters are not allowed");
    }
    if !is_folder && name.contains('/') {
        return bad("a file name, not a path");
    }
    if name.starts_with('/') || name.split('/').any(|part| part == ".." || part == ".") {
        return bad("must stay inside comfyui's input directory");
    }
    Ok(())
}

/// The image's content type from its extension.
fn content_type(file_name: &str) -> &'static str {
    let extension = file_name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        _ => "application/octet-stream",
    }
}

fn multipart_body(
    boundary: &str,
    file_name: &str,
    bytes: &[u8],
    subfolder: Option<&str>,
) -> Vec<u8> {
    let mut body = Vec::with_capacity(bytes.len() + 512);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; \
             filename=\"{file_name}\"\r\nContent-Type: {}\r\n\r\n",
            content_type(file_name)
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(b"\r\n");
    let mut field = |name: &str, value: &str| {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    };
    field("type", "input");
    if let Some(subfolder) = subfolder {
        field("subfolder", subfolder);
    }
    field("overwrite", "false");
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

fn parse_uploaded(url: &str, answer: &[u8]) -> Result<UploadedImage, ComfyError> {
    let protocol = |reason: String| ComfyError::Protocol {
        url: url.to_owned(),
        reason,
    };
    let value: Value = serde_json::from_slice(answer)
        .map_err(|err| protocol(format!("upload answer is not json: {err}")))?;
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    Ok(UploadedImage {
        name: text("name").ok_or_else(|| protocol("upload answer without a 'name'".into()))?,
        subfolder: text("subfolder").unwrap_or_default(),
        kind: text("type").unwrap_or_else(|| "input".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(name: &str) -> Vec<u8> {
        let path = format!("{}/../../shared/comfyui/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
    }

    #[test]
    fn recorded_upload_answers_give_the_loadimage_name() {
        let plain = parse_uploaded("u", &recorded("upload_image_response.json")).unwrap();
        assert_eq!(plain.input_name(), "fixture_upload.png");
        let renamed = parse_uploaded("u", &recorded("upload_image_renamed_response.json")).unwrap();
        assert_eq!(renamed.name, "fixture_upload (1).png");
        let sub = parse_uploaded("u", &recorded("upload_image_subfolder_response.json")).unwrap();
        assert_eq!(
            sub,
            UploadedImage {
                name: "fixture_upload.png".into(),
                subfolder: "shots".into(),
                kind: "input".into(),
            }
        );
        assert_eq!(sub.input_name(), "shots/fixture_upload.png");
    }

    #[test]
    fn the_body_is_a_well_formed_form() {
        let body = multipart_body("B", "a.png", b"\x89PNG", Some("shots"));
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(
            "--B\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\
             Content-Type: image/png\r\n\r\n"
        ));
        assert!(text.contains("name=\"type\"\r\n\r\ninput\r\n"));
        assert!(text.contains("name=\"subfolder\"\r\n\r\nshots\r\n"));
        assert!(text.contains("name=\"overwrite\"\r\n\r\nfalse\r\n"));
        assert!(text.ends_with("--B--\r\n"));
    }

    #[test]
    fn names_that_would_escape_or_break_the_header_are_refused() {
        for name in [
            "",
            "../x.png",
            "a/b.png",
            "a\"b.png",
            "a\r\nb.png",
            "a\\b.png",
        ] {
            assert!(
                check_name("upload file name", name, false).is_err(),
                "{name:?}"
            );
        }
        for folder in ["../up", "/abs", "a/../b", "a\nb"] {
            assert!(
                check_name("upload subfolder", folder, true).is_err(),
                "{folder:?}"
            );
        }
        assert!(check_name("upload file name", "shot 010 (1).png", false).is_ok());
        assert!(check_name("upload subfolder", "reelmesh/shots", true).is_ok());
        assert!(check_name("upload subfolder", "", true).is_ok());
    }
}
