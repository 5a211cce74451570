pub fn x() {}
pub mod timecode;
