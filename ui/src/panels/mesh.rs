//! The machines of the mesh: each node with its host, GPU, VRAM, utilization,
//! status, current job, what it can run (and why not the rest), and how long ago
//! it was heard; this node's sync state; inviting a machine.

use egui::{Color32, RichText};

use crate::editor::Editor;

/// This node's sync state in a few words, for the status line.
#[must_use]
pub fn sync_summary(editor: &Editor) -> String {
    if editor.stopped.is_some() {
        return "node stopped".to_owned();
    }
    let Some(status) = &editor.status else {
        return "starting…".to_owned();
    };
    let connected = status
        .peers
        .iter()
        .filter(|p| p.connected && !p.this_node)
        .count();
    if status.listen_addrs.is_empty() && connected == 0 {
        return "offline: edits are kept here and sync when this machine joins a mesh".to_owned();
    }
    match connected {
        0 => "on the mesh, no peer connected: edits sync when one is".to_owned(),
        1 => "in step with 1 peer".to_owned(),
        n => format!("in step with {n} peers"),
    }
}

/// The mesh view.
pub fn mesh(editor: &mut Editor, ui: &mut egui::Ui) {
    // The "heard N s ago" column counts on by itself while this view is shown.
    ui.ctx()
        .request_repaint_after(std::time::Duration::from_secs(1));
    ui.horizontal(|ui| {
        ui.heading("Mesh");
        ui.label(sync_summary(editor));
        if ui.button("Invite a machine…").clicked() {
            editor.run_command(crate::commands::Command::Invite);
        }
    });
    let Some(status) = editor.status.clone() else {
        ui.label("reading the node's status…");
        return;
    };
    for failing in &status.failing_peers {
        ui.label(
            RichText::new(format!(
                "cannot connect with {}: {} ({} tries)",
                failing.address, failing.reason, failing.failures
            ))
            .color(Color32::from_rgb(225, 140, 50)),
        );
    }
    egui::ScrollArea::vertical().show(ui, |ui| {
        egui::Grid::new("mesh-nodes")
            .num_columns(9)
            .striped(true)
            .spacing([14.0, 6.0])
            .show(ui, |ui| {
                for title in [
                    "Node", "Host", "GPU", "VRAM", "Use", "Status", "Job", "Can run", "Heard",
                ] {
                    ui.label(RichText::new(title).strong());
                }
                ui.end_row();
                for peer in &status.peers {
                    let short: String = peer
                        .node_id
                        .chars()
                        .rev()
                        .take(6)
                        .collect::<String>()
                        .chars()
                        .rev()
                        .collect();
                    ui.label(if peer.this_node {
                        RichText::new(format!("{short} (this)")).strong()
                    } else {
                        RichText::new(short)
                    });
                    ui.label(&peer.host_name);
                    ui.label(&peer.gpu);
                    match (peer.vram_used, peer.vram_total) {
                        (Some(used), Some(total)) if total > 0 => {
                            let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
                            ui.add(
                                egui::ProgressBar::new((used as f64 / total as f64) as f32)
                                    .desired_width(120.0)
                                    .text(format!("{:.1} / {:.1} GiB", gib(used), gib(total))),
                            );
                        }
                        _ => {
                            ui.label("—");
                        }
                    }
                    ui.label(
                        peer.utilization
                            .map_or_else(|| "—".to_owned(), |u| format!("{u} %")),
                    );
                    let color = match peer.status.as_str() {
                        "idle" => Color32::from_rgb(60, 170, 90),
                        "busy" => Color32::from_rgb(70, 130, 220),
                        "error" => Color32::from_rgb(220, 80, 70),
                        _ => Color32::GRAY,
                    };
                    let status_text = ui.label(RichText::new(&peer.status).color(color));
                    if let Some(detail) = &peer.status_detail {
                        status_text.on_hover_text(detail);
                    }
                    ui.label(peer.current_job.clone().unwrap_or_default());
                    let offer = editor.offers.iter().find(|o| o.node_id == peer.node_id);
                    let runs =
                        offer.map_or_else(|| peer.capabilities.clone(), |o| o.workflows.clone());
                    let can = ui.label(format!("{} workflows", runs.len()));
                    let mut hover = runs.join(", ");
                    if let Some(offer) = offer {
                        for (workflow, why) in &offer.unavailable {
                            hover.push_str(&format!("\nnot {workflow}: {why}"));
                        }
                        if let Some(down) = &offer.renderer_down {
                            hover.push_str(&format!("\nrenderer down: {down}"));
                        }
                        if let Some(paused) = &offer.paused {
                            hover.push_str(&format!("\npaused: {paused}"));
                        }
                    }
                    if !hover.is_empty() {
                        can.on_hover_text(hover);
                    }
                    let since = editor.status_at.elapsed().as_secs_f64();
                    ui.label(
                        peer.last_heartbeat_secs.map_or_else(
                            || "never".to_owned(),
                            |s| format!("{:.0} s ago", s + since),
                        ),
                    );
                    ui.end_row();
                }
            });
    });
}
