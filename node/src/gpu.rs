//! What GPU this node has, for presence heartbeats.
//!
//! A [`GpuProbe`] is made once at start-up and asked for a [`GpuSample`] before each
//! heartbeat. It tries, in order:
//! 1. **NVML** (the NVIDIA driver's management library), device 0: name, memory and
//!    utilization. NVML is loaded once in [`GpuProbe::new`]; a machine without the
//!    driver simply has no handle, which is normal and only logged at debug level.
//! 2. **ComfyUI's `GET /system_stats`**, when a ComfyUI address is configured. This
//!    covers GPUs NVML cannot see (AMD, Intel, Apple) and machines where NVML is not
//!    installed. ComfyUI gives no utilization. The request carries no `Origin` header:
//!    ComfyUI answers 403 to an Origin that does not match its Host exactly.
//! 3. **CPU only**: `gpu` is `None`.
//!
//! Sampling never fails and never panics: whatever went wrong on the way is written
//! into [`GpuSample::problem`] in words (lowercase, naming the address), so the caller
//! can show it next to the node without deciding how to handle each error.
//!
//! The figures are kept within what a presence heartbeat accepts (name at most 256
//! bytes, used memory not above total, utilization at most 100 percent), so a sample
//! can go onto the wire as it is.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use nvml_wrapper::Nvml;
use reelmesh_protocol::wire::{GpuInfo, GpuSource, truncate_utf8};
use serde_json::Value;

/// How long one `/system_stats` request may take, connecting included.
const COMFY_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest `/system_stats` body read (a real one is about 1.5 KB).
const MAX_BODY_BYTES: usize = 256 * 1024;
/// Longest GPU name or problem text kept (the presence limit for a text field).
const MAX_TEXT_BYTES: usize = 256;

/// What one probe found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuSample {
    /// The GPU, or `None` for a CPU-only node.
    pub gpu: Option<GpuInfo>,
    /// What went wrong while looking, in words (e.g. "comfyui at http://..: connection
    /// refused"); `None` when nothing did.
    pub problem: Option<String>,
}

/// Why ComfyUI's `/system_stats` gave no answer that could be used.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The request did not get a response (refused, timed out, broken connection).
    #[error("comfyui at {url}: {why}")]
    Http {
        /// The address asked.
        url: String,
        /// What went wrong, in the transport's words.
        why: String,
    },
    /// The server answered with a status other than 200.
    #[error("comfyui at {url}: http status {status}")]
    Status {
        /// The address asked.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The body was larger than any real `/system_stats` answer.
    #[error("comfyui at {url}: system_stats body over the {limit}-byte limit")]
    TooLarge {
        /// The address asked.
        url: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is not JSON.
    #[error("system_stats body is not json: {why}")]
    Json {
        /// The parser's words.
        why: String,
    },
    /// A field is missing or has the wrong type.
    #[error("system_stats field '{field}': {why}")]
    Field {
        /// The field, as a path (`devices[0].vram_total`).
        field: &'static str,
        /// What is wrong with it.
        why: &'static str,
    },
}

/// Looks for this node's GPU; see the module docs for the order.
pub struct GpuProbe {
    /// The NVML handle, when the driver library loaded and initialised.
    nvml: Option<Arc<Nvml>>,
    /// ComfyUI's base address (`http://127.0.0.1:8188`), without a trailing slash.
    comfy_url: Option<String>,
    /// The HTTP client, or why it could not be built.
    http: Result<reqwest::Client, String>,
}

impl fmt::Debug for GpuProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuProbe")
            .field("nvml_loaded", &self.nvml.is_some())
            .field("comfy_url", &self.comfy_url)
            .finish_non_exhaustive()
    }
}

impl GpuProbe {
    /// Try NVML once and keep the handle if it works (why not is logged at debug
    /// level: most machines without an NVIDIA GPU have no NVML). `comfy_url` is the
    /// base address of the local ComfyUI, used when NVML gives nothing.
    #[must_use]
    pub fn new(comfy_url: Option<String>) -> GpuProbe {
        let nvml = match Nvml::init() {
            Ok(nvml) => Some(nvml),
            Err(err) => {
                tracing::debug!(
                    "nvml not available, gpu figures come from comfyui or nowhere: {err}"
                );
                None
            }
        };
        GpuProbe::from_parts(nvml, comfy_url)
    }

    /// A probe with the given NVML handle (tests pass `None` so that a machine's real
    /// GPU cannot win over the test double).
    fn from_parts(nvml: Option<Nvml>, comfy_url: Option<String>) -> GpuProbe {
        crate::tls();
        let http = reqwest::Client::builder()
            .timeout(COMFY_TIMEOUT)
            // ComfyUI is local to this node; a system proxy must not get in the way.
            .no_proxy()
            .build()
            .map_err(|err| format!("http client could not be built: {}", root_cause(&err)));
        GpuProbe {
            nvml: nvml.map(Arc::new),
            comfy_url: comfy_url.map(|url| url.trim_end_matches('/').to_owned()),
            http,
        }
    }

    /// NVML first, else ComfyUI's `/system_stats`, else CPU only. Never fails: what
    /// went wrong on the way is in [`GpuSample::problem`].
    pub async fn sample(&mut self) -> GpuSample {
        let mut problems = Vec::new();

        if let Some(nvml) = &self.nvml {
            let nvml = Arc::clone(nvml);
            // NVML calls can block (a GPU without persistence mode wakes up slowly).
            match tokio::task::spawn_blocking(move || read_nvml(&nvml)).await {
                Ok(Ok(gpu)) => {
                    return GpuSample {
                        gpu: Some(gpu),
                        problem: None,
                    };
                }
                Ok(Err(why)) => problems.push(why),
                Err(err) => problems.push(format!("nvml query did not finish: {err}")),
            }
        }

        let mut gpu = None;
        if let Some(url) = &self.comfy_url {
            match &self.http {
                Ok(client) => match fetch_system_stats(client, url).await {
                    Ok(found) => gpu = found,
                    Err(
                        err @ (ProbeError::Http { .. }
                        | ProbeError::Status { .. }
                        | ProbeError::TooLarge { .. }),
                    ) => problems.push(err.to_string()),
                    Err(err) => problems.push(format!("comfyui at {url}: {err}")),
                },
                Err(why) => problems.push(format!("comfyui at {url}: {why}")),
            }
        }

        let problem = if problems.is_empty() {
            None
        } else {
            Some(truncate_utf8(&problems.join("; "), MAX_TEXT_BYTES).to_owned())
        };
        GpuSample { gpu, problem }
    }
}

/// Device 0 through NVML. Name and memory are required; utilization is left out
/// when the device does not report it.
fn read_nvml(nvml: &Nvml) -> Result<GpuInfo, String> {
    let device = nvml
        .device_by_index(0)
        .map_err(|err| format!("nvml device 0: {err}"))?;
    let name = device
        .name()
        .map_err(|err| format!("nvml device 0 name: {err}"))?;
    let memory = device
        .memory_info()
        .map_err(|err| format!("nvml device 0 memory: {err}"))?;
    let utilization = device
        .utilization_rates()
        .ok()
        .and_then(|rates| u8::try_from(rates.gpu.min(100)).ok());
    Ok(GpuInfo {
        name: truncate_utf8(name.trim(), MAX_TEXT_BYTES).to_owned(),
        vram_total: memory.total,
        vram_used: memory.used.min(memory.total),
        utilization,
        source: GpuSource::Nvml,
    })
}

/// `GET {url}/system_stats`, with no `Origin` header, and parse it.
async fn fetch_system_stats(
    client: &reqwest::Client,
    url: &str,
) -> Result<Option<GpuInfo>, ProbeError> {
    let http_error = |err: &reqwest::Error| ProbeError::Http {
        url: url.to_owned(),
        why: if err.is_timeout() {
            format!("no answer within {} s", COMFY_TIMEOUT.as_secs())
        } else {
            root_cause(err)
        },
    };
    let mut response = client
        .get(format!("{url}/system_stats"))
        .send()
        .await
        .map_err(|err| http_error(&err))?;
    let status = response.status();
    if !status.is_success() {
        return Err(ProbeError::Status {
            url: url.to_owned(),
            status: status.as_u16(),
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|err| http_error(&err))? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ProbeError::TooLarge {
                url: url.to_owned(),
                limit: MAX_BODY_BYTES,
            });
        }
        body.extend_from_slice(&chunk);
    }
    parse_system_stats(&body)
}

/// Parse a `/system_stats` body. `Ok(None)` when ComfyUI's first device is a CPU
/// (type `"cpu"`, as with `--cpu`). For a GPU: the name without ComfyUI's
/// `"cuda:0 "` prefix and `" : cudaMallocAsync"` suffix, total memory, used memory
/// (total minus free), no utilization, source ComfyUI.
///
/// # Errors
/// [`ProbeError::Json`] when the body is not JSON, [`ProbeError::Field`] (naming
/// the field, e.g. `devices[0].vram_total`) when a needed field is missing or has
/// the wrong type.
pub fn parse_system_stats(body: &[u8]) -> Result<Option<GpuInfo>, ProbeError> {
    let stats: Value = serde_json::from_slice(body).map_err(|err| ProbeError::Json {
        why: err.to_string(),
    })?;
    let devices = stats
        .get("devices")
        .ok_or(ProbeError::Field {
            field: "devices",
            why: "missing",
        })?
        .as_array()
        .ok_or(ProbeError::Field {
            field: "devices",
            why: "not a list",
        })?;
    let device = devices.first().ok_or(ProbeError::Field {
        field: "devices",
        why: "empty list",
    })?;
    let device_type = str_field(device, "type", "devices[0].type")?;
    if device_type == "cpu" {
        return Ok(None);
    }
    let raw_name = str_field(device, "name", "devices[0].name")?;
    let vram_total = u64_field(device, "vram_total", "devices[0].vram_total")?;
    let vram_free = u64_field(device, "vram_free", "devices[0].vram_free")?;
    let name = match clean_device_name(raw_name) {
        "" => device_type,
        name => name,
    };
    Ok(Some(GpuInfo {
        name: truncate_utf8(name, MAX_TEXT_BYTES).to_owned(),
        vram_total,
        vram_used: vram_total.saturating_sub(vram_free),
        utilization: None,
        source: GpuSource::Comfyui,
    }))
}

fn str_field<'a>(device: &'a Value, key: &str, field: &'static str) -> Result<&'a str, ProbeError> {
    device
        .get(key)
        .ok_or(ProbeError::Field {
            field,
            why: "missing",
        })?
        .as_str()
        .ok_or(ProbeError::Field {
            field,
            why: "not a string",
        })
}

fn u64_field(device: &Value, key: &str, field: &'static str) -> Result<u64, ProbeError> {
    device
        .get(key)
        .ok_or(ProbeError::Field {
            field,
            why: "missing",
        })?
        .as_u64()
        .ok_or(ProbeError::Field {
            field,
            why: "not a non-negative integer",
        })
}

/// `"cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync"` → `"NVIDIA GeForce RTX 4090"`.
/// ComfyUI writes `"{device} {name} : {allocator}"`; anything else is kept as it is.
fn clean_device_name(raw: &str) -> &str {
    let mut name = raw.trim();
    if let Some((device, rest)) = name.split_once(' ')
        && let Some((kind, index)) = device.split_once(':')
        && !kind.is_empty()
        && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !index.is_empty()
        && index.bytes().all(|b| b.is_ascii_digit())
    {
        name = rest.trim_start();
    }
    if let Some((rest, allocator)) = name.rsplit_once(" : ")
        && !allocator.is_empty()
        && !allocator.contains(char::is_whitespace)
    {
        name = rest.trim_end();
    }
    name
}

/// The innermost cause of an error, lowercase at the start: the outer layers of a
/// reqwest error repeat the url and say little ("error sending request for url
/// (..): client error (Connect): tcp connect error: Connection refused (os error
/// 111)" becomes "connection refused (os error 111)").
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    crate::lowercase_first(&cause.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::oneshot;

    const RECORDED: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/comfyui/system_stats.json"
    ));

    /// The recorded answer with devices[0] turned into a CUDA GPU.
    fn cuda_body() -> Vec<u8> {
        let mut stats: Value = serde_json::from_str(RECORDED).unwrap();
        let device = &mut stats["devices"][0];
        device["name"] = "cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync".into();
        device["type"] = "cuda".into();
        device["index"] = 0.into();
        device["vram_total"] = 25_393_692_672_u64.into();
        device["vram_free"] = 23_875_977_216_u64.into();
        device["torch_vram_total"] = 0.into();
        device["torch_vram_free"] = 0.into();
        serde_json::to_vec(&stats).unwrap()
    }

    fn cuda_expected() -> GpuInfo {
        GpuInfo {
            name: "NVIDIA GeForce RTX 4090".into(),
            vram_total: 25_393_692_672,
            vram_used: 25_393_692_672 - 23_875_977_216,
            utilization: None,
            source: GpuSource::Comfyui,
        }
    }

    fn recorded_with(change: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut stats: Value = serde_json::from_slice(&cuda_body()).unwrap();
        change(&mut stats);
        serde_json::to_vec(&stats).unwrap()
    }

    fn field_of(result: Result<Option<GpuInfo>, ProbeError>) -> &'static str {
        match result {
            Err(ProbeError::Field { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    /// Answers one HTTP request with `status_line` and `body`; the request's head
    /// comes back on the returned channel.
    async fn serve_once(
        status_line: &'static str,
        body: Vec<u8>,
    ) -> (String, oneshot::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (head_tx, head_rx) = oneshot::channel();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0_u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                request.extend_from_slice(&buf[..n]);
            }
            let head = format!(
                "{status_line}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            socket.write_all(head.as_bytes()).await.unwrap();
            socket.write_all(&body).await.unwrap();
            socket.shutdown().await.unwrap();
            head_tx
                .send(String::from_utf8_lossy(&request).into_owned())
                .unwrap();
        });
        (url, head_rx)
    }

    #[test]
    fn recorded_cpu_stats_mean_no_gpu() {
        assert_eq!(parse_system_stats(RECORDED.as_bytes()).unwrap(), None);
    }

    #[test]
    fn cuda_stats_give_the_gpu() {
        assert_eq!(
            parse_system_stats(&cuda_body()).unwrap(),
            Some(cuda_expected())
        );
    }

    #[test]
    fn free_above_total_gives_zero_used() {
        let body = recorded_with(|stats| stats["devices"][0]["vram_free"] = u64::MAX.into());
        let gpu = parse_system_stats(&body).unwrap().unwrap();
        assert_eq!(gpu.vram_used, 0);
    }

    #[test]
    fn device_names_lose_comfyui_decoration_only() {
        assert_eq!(
            clean_device_name("cuda:0 NVIDIA GeForce RTX 4090 : cudaMallocAsync"),
            "NVIDIA GeForce RTX 4090"
        );
        assert_eq!(
            clean_device_name("cuda:1 AMD Radeon RX 7900 XTX : native"),
            "AMD Radeon RX 7900 XTX"
        );
        assert_eq!(
            clean_device_name("xpu:0 Intel(R) Arc(TM) A770 Graphics : native"),
            "Intel(R) Arc(TM) A770 Graphics"
        );
        assert_eq!(clean_device_name("mps"), "mps");
        assert_eq!(
            clean_device_name("NVIDIA GeForce RTX 3060"),
            "NVIDIA GeForce RTX 3060"
        );
    }

    #[test]
    fn malformed_bodies_name_what_is_wrong() {
        let not_json = parse_system_stats(b"<html>502</html>");
        assert!(
            matches!(not_json, Err(ProbeError::Json { .. })),
            "{not_json:?}"
        );
        assert!(
            not_json
                .unwrap_err()
                .to_string()
                .starts_with("system_stats body is not json")
        );

        let no_devices = recorded_with(|stats| {
            stats.as_object_mut().unwrap().remove("devices");
        });
        assert_eq!(field_of(parse_system_stats(&no_devices)), "devices");

        let empty_devices = recorded_with(|stats| stats["devices"] = Value::Array(Vec::new()));
        assert_eq!(field_of(parse_system_stats(&empty_devices)), "devices");

        let string_total =
            recorded_with(|stats| stats["devices"][0]["vram_total"] = "24 GB".into());
        let err = parse_system_stats(&string_total).unwrap_err();
        assert_eq!(
            err.to_string(),
            "system_stats field 'devices[0].vram_total': not a non-negative integer"
        );

        let no_free = recorded_with(|stats| {
            stats["devices"][0]
                .as_object_mut()
                .unwrap()
                .remove("vram_free");
        });
        assert_eq!(
            field_of(parse_system_stats(&no_free)),
            "devices[0].vram_free"
        );

        let numeric_type = recorded_with(|stats| stats["devices"][0]["type"] = 1.into());
        assert_eq!(
            field_of(parse_system_stats(&numeric_type)),
            "devices[0].type"
        );
    }

    #[tokio::test]
    async fn sample_reads_comfyui_without_an_origin_header() {
        let (url, request) = serve_once("HTTP/1.1 200 OK", cuda_body()).await;
        let mut probe = GpuProbe::from_parts(None, Some(format!("{url}/")));

        let sample = probe.sample().await;

        assert_eq!(
            sample,
            GpuSample {
                gpu: Some(cuda_expected()),
                problem: None,
            }
        );
        let request = request.await.unwrap();
        assert!(
            request.starts_with("GET /system_stats HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            !request
                .lines()
                .any(|line| line.to_ascii_lowercase().starts_with("origin:")),
            "request carried an origin header:\n{request}"
        );
    }

    #[tokio::test]
    async fn sample_reports_a_bad_status_with_the_address() {
        let (url, _request) = serve_once("HTTP/1.1 403 Forbidden", Vec::new()).await;
        let mut probe = GpuProbe::from_parts(None, Some(url.clone()));

        let sample = probe.sample().await;

        assert_eq!(sample.gpu, None);
        assert_eq!(
            sample.problem.as_deref(),
            Some(format!("comfyui at {url}: http status 403").as_str())
        );
    }

    #[tokio::test]
    async fn sample_reports_a_malformed_body_with_the_address() {
        let (url, _request) = serve_once("HTTP/1.1 200 OK", b"{\"devices\": 3}".to_vec()).await;
        let mut probe = GpuProbe::from_parts(None, Some(url.clone()));

        let sample = probe.sample().await;

        assert_eq!(sample.gpu, None);
        assert_eq!(
            sample.problem.as_deref(),
            Some(format!("comfyui at {url}: system_stats field 'devices': not a list").as_str())
        );
    }

    #[tokio::test]
    async fn sample_of_an_unreachable_comfyui_names_the_address() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let mut probe = GpuProbe::from_parts(None, Some(format!("http://{address}")));

        let sample = probe.sample().await;

        assert_eq!(sample.gpu, None);
        let problem = sample.problem.unwrap();
        assert!(
            problem.starts_with(&format!("comfyui at http://{address}: connection refused")),
            "{problem}"
        );
    }

    #[tokio::test]
    async fn sample_without_nvml_or_comfyui_is_cpu_only_and_quiet() {
        let mut probe = GpuProbe::from_parts(None, None);
        assert_eq!(probe.sample().await, GpuSample::default());
    }
}
