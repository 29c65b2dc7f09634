package ics

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/emersion/go-ical"
)

// feed is a parsed feed: the calendar without its events (its properties
// and time zones), and each event, parsed on its own so that one that
// does not parse is one invalid record, not a failed sync.
type feed struct {
	calendar *ical.Calendar
	events   []parsedEvent
}

type parsedEvent struct {
	line  int // of its BEGIN:VEVENT
	event *ical.Event
	err   error
}

// parse splits body at its VEVENT boundaries (BEGIN:VEVENT and END:VEVENT
// content lines; a folded line never starts one) and has go-ical parse the
// calendar and each event. A feed that ends before END:VCALENDAR, or
// inside an event, is refused whole: it was cut off.
func parse(body []byte) (*feed, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errors.New("page 1: the feed is empty")
	}
	var rest bytes.Buffer
	var f feed
	var block *bytes.Buffer
	start := 0
	for n, line := range bytes.SplitAfter(body, []byte("\n")) {
		name := bytes.TrimRight(line, "\r\n")
		switch {
		case block == nil && bytes.EqualFold(name, []byte("BEGIN:VEVENT")):
			block, start = bytes.NewBufferString("BEGIN:VCALENDAR\r\n"), n+1
			block.Write(line)
		case block != nil && bytes.EqualFold(name, []byte("END:VEVENT")):
			block.Write(line)
			if !bytes.HasSuffix(line, []byte("\n")) {
				block.WriteString("\r\n")
			}
			block.WriteString("END:VCALENDAR\r\n")
			f.events = append(f.events, parseEvent(block.Bytes(), start))
			block = nil
		case block != nil:
			block.Write(line)
		default:
			rest.Write(line)
		}
	}
	if block != nil {
		return nil, fmt.Errorf("page 1: the feed ends inside the event that starts on line %d: it was cut off (truncated download?); nothing was applied", start)
	}
	cal, err := ical.NewDecoder(&rest).Decode()
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return nil, errors.New("page 1: the feed ends before END:VCALENDAR: it was cut off (truncated download?); nothing was applied")
	case err != nil:
		return nil, fmt.Errorf("page 1: the feed is not valid iCalendar (outside its events): %v", err)
	}
	f.calendar = cal
	return &f, nil
}

func parseEvent(block []byte, line int) parsedEvent {
	cal, err := ical.NewDecoder(bytes.NewReader(block)).Decode()
	if err != nil {
		return parsedEvent{line: line, err: err}
	}
	events := cal.Events()
	if len(events) != 1 {
		return parsedEvent{line: line, err: errors.New("not one VEVENT")}
	}
	return parsedEvent{line: line, event: &events[0]}
}
