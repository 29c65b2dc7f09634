// Package promqltest reads what a PromQL expression asks Prometheus for:
// the series selectors it names and the labels it groups and matches by.
// It is a small lexer, not a parser: enough for the alert rules and the
// Grafana dashboard under deploy/ (whose $variables it skips), which
// promtool parses for real.
package promqltest

import (
	"fmt"
	"slices"
	"strings"
)

// Selector is one series selector: a metric name and its label matchers,
// braces included ("" when it has none).
type Selector struct {
	Name     string
	Matchers string
}

// String is the selector as PromQL writes it.
func (s Selector) String() string { return s.Name + s.Matchers }

// Expr is what an expression names.
type Expr struct {
	// Selectors are the series selectors, in order of appearance.
	Selectors []Selector
	// Labels are the label names in by, without, on, ignoring, group_left
	// and group_right lists, sorted, each once.
	Labels []string
}

// keywords are identifiers taken for no metric name even when no opening
// parenthesis follows them: operators, and aggregations written
// "sum by (le) (…)".
var keywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true,
	"without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true, "atan2": true,
	"inf": true, "nan": true, "sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true,
	"stdvar": true, "count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true}

// labelLists are the keywords followed by a list of label names.
var labelLists = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// Parse reads expr.
func Parse(expr string) (Expr, error) {
	var out Expr
	s := expr
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end, err := skipString(s, i)
			if err != nil {
				return out, err
			}
			i = end
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '[':
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return out, fmt.Errorf("promql %q: unclosed [ at %d", expr, i)
			}
			i += end + 1
		case c == '{':
			return out, fmt.Errorf("promql %q: a selector without a metric name at %d", expr, i)
		case c == '$':
			i = skipVariable(s, i)
		case c >= '0' && c <= '9' || c == '.':
			for i < len(s) && (isIdent(s[i]) || s[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			word := s[i:j]
			k := j
			for k < len(s) && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n' || s[k] == '\r') {
				k++
			}
			switch {
			case labelLists[word] && k < len(s) && s[k] == '(':
				end := strings.IndexByte(s[k:], ')')
				if end < 0 {
					return out, fmt.Errorf("promql %q: unclosed label list after %s", expr, word)
				}
				for _, l := range strings.Split(s[k+1:k+end], ",") {
					if l = strings.TrimSpace(l); l != "" && !slices.Contains(out.Labels, l) {
						out.Labels = append(out.Labels, l)
					}
				}
				j = k + end + 1
			case k < len(s) && s[k] == '(': // a function or an aggregation
			case keywords[word]:
			default:
				sel := Selector{Name: word}
				if k < len(s) && s[k] == '{' {
					end, err := closeBrace(s, k)
					if err != nil {
						return out, fmt.Errorf("promql %q: %w", expr, err)
					}
					sel.Matchers, j = s[k:end], end
				}
				out.Selectors = append(out.Selectors, sel)
			}
			i = j
		default:
			i++
		}
	}
	slices.Sort(out.Labels)
	return out, nil
}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isIdent(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

// skipString returns the index after the string literal starting at i.
func skipString(s string, i int) (int, error) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("promql %q: unclosed string at %d", s, i)
}

// skipVariable returns the index after a Grafana variable: $name or ${name}.
func skipVariable(s string, i int) int {
	i++
	if i < len(s) && s[i] == '{' {
		if end := strings.IndexByte(s[i:], '}'); end >= 0 {
			return i + end + 1
		}
		return len(s)
	}
	for i < len(s) && isIdent(s[i]) {
		i++
	}
	return i
}

// closeBrace returns the index after the } that closes the { at i.
func closeBrace(s string, i int) (int, error) {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '"', '\'', '`':
			end, err := skipString(s, j)
			if err != nil {
				return 0, err
			}
			j = end - 1
		case '}':
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unclosed { at %d", i)
}
