package eventbus

// ControlRecording is a core-NATS request subject (never stored in a
// stream): the telephony service answers it with a fresh download URL of a
// call's recording. The URL carries a live credential, so it is resolved
// when asked and never stored or published (the mirror and the call's
// changes carry RECORD_FILE_ID only).
const ControlRecording = "b24.control.telephony.recording"

// RecordingRequest asks for the recording of one call.
type RecordingRequest struct {
	MemberID string `json:"member_id"`
	CallID   string `json:"call_id"`
}

// RecordingReply answers a RecordingRequest: the Disk file id and a fresh
// download URL, or Error saying why there is none (unknown call, no
// recording, the portal refused).
type RecordingReply struct {
	FileID int64  `json:"file_id,omitempty"`
	URL    string `json:"url,omitempty"`
	Error  string `json:"error,omitempty"`
}
