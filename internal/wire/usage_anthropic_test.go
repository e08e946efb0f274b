package wire

import "testing"

func TestAnthropicUsage(t *testing.T) {
	body := []byte(`{"id":"msg_1","usage":{"input_tokens":10,"cache_read_input_tokens":5,"cache_creation_input_tokens":3,"output_tokens":7}}`)
	if u, ok := UsageFromBody(body); !ok || u.Prompt != 18 || u.Cached != 5 || u.Completion != 7 || u.Total != 25 {
		t.Errorf("UsageFromBody = %+v, %v; want prompt 18 (10+5+3), cached 5, completion 7", u, ok)
	}
	start := []byte(`{"type":"message_start","message":{"id":"m","usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":1}}}`)
	if u, ok, chunk := StreamUsage(start); !ok || chunk || u.Prompt != 15 || u.Cached != 5 {
		t.Errorf("message_start: %+v %v %v", u, ok, chunk)
	}
	delta := []byte(`{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":42}}`)
	if u, ok, chunk := StreamUsage(delta); !ok || chunk || u.Completion != 42 || u.Prompt != 0 {
		t.Errorf("message_delta: %+v %v %v", u, ok, chunk)
	}
}
