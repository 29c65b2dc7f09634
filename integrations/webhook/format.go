package webhook

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/atis-edu/atis-scheduler/integrations/delivery"
)

// colors are the level colours of Slack attachments and Teams cards.
var colors = map[string]string{"info": "2F80ED", "success": "27AE60", "warning": "F2994A", "danger": "EB5757"}

// Body returns the request body of req in format.
func Body(format string, chatID json.RawMessage, req delivery.Request) ([]byte, error) {
	switch format {
	case "json":
		if req.Digest {
			return json.Marshal(map[string]any{"digest": true, "count": len(req.Notifications), "notifications": req.Notifications})
		}
		return json.Marshal(req.Notifications[0])
	case "slack", "mattermost":
		return json.Marshal(map[string]any{"text": Text(req, "*"), "blocks": slackBlocks(req)})
	case "teams":
		return json.Marshal(map[string]any{"@type": "MessageCard", "@context": "https://schema.org/extensions",
			"summary": title(req), "themeColor": colors[worst(req)], "title": title(req), "text": strings.ReplaceAll(body(req, "**"), "\n", "\n\n")})
	case "teams_adaptive":
		return json.Marshal(map[string]any{"type": "message", "attachments": []any{map[string]any{
			"contentType": "application/vnd.microsoft.card.adaptive",
			"content": map[string]any{"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", "version": "1.4",
				"body": []any{
					map[string]any{"type": "TextBlock", "text": title(req), "weight": "Bolder", "size": "Medium", "wrap": true},
					map[string]any{"type": "TextBlock", "text": body(req, "**"), "wrap": true},
				}}}}})
	case "telegram":
		return json.Marshal(map[string]any{"chat_id": chatID, "text": Text(req, ""), "disable_web_page_preview": true})
	}
	return nil, fmt.Errorf("config.format %q is not one of %s", format, strings.Join(Formats, ", "))
}

// Text is the whole message as plain text, bold marked with bold ("*" for
// Slack, "" for none).
func Text(req delivery.Request, bold string) string {
	return bold + title(req) + bold + "\n" + body(req, bold)
}

func title(req delivery.Request) string {
	if req.Digest {
		return fmt.Sprintf("ATİS: %d notifications", len(req.Notifications))
	}
	n := req.Notifications[0]
	return fmt.Sprintf("[%s] %s", strings.ToUpper(n.Level), n.Title)
}

func body(req delivery.Request, bold string) string {
	if !req.Digest {
		return line(req.Notifications[0], false, bold)
	}
	lines := make([]string, len(req.Notifications))
	for i, n := range req.Notifications {
		lines[i] = line(n, true, bold)
	}
	return strings.Join(lines, "\n")
}

func line(n delivery.Notification, withTitle bool, bold string) string {
	var b strings.Builder
	if withTitle {
		fmt.Fprintf(&b, "• %s[%s] %s%s: ", bold, strings.ToUpper(n.Level), n.Title, bold)
	}
	b.WriteString(n.Message)
	if n.ActionURL != "" {
		fmt.Fprintf(&b, " (%s)", n.ActionURL)
	}
	return b.String()
}

func slackBlocks(req delivery.Request) []any {
	return []any{
		map[string]any{"type": "header", "text": map[string]any{"type": "plain_text", "text": truncate(title(req), 150)}},
		map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": truncate(body(req, "*"), 3000)}},
	}
}

// worst is the most severe level among the notifications.
func worst(req delivery.Request) string {
	rank := map[string]int{"info": 0, "success": 1, "warning": 2, "danger": 3}
	w := "info"
	for _, n := range req.Notifications {
		if rank[n.Level] > rank[w] {
			w = n.Level
		}
	}
	return w
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
