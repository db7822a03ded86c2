package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"unicode/utf8"
)

// --- types -------------------------------------------------------------------

// The schema is fastjson-api's (rust/fastjson-api), so that the Python, Go
// and Rust services accept and refuse the same bodies: every field read is
// required and not null, except retweeted_status. Pointers tell a missing or
// null field from a zero one, since encoding/json has no "required".
type input struct {
	Statuses *[]*status `json:"statuses"`
}

type status struct {
	IDStr *string `json:"id_str"`
	// Kept raw: only whether it is an object matters, and decoding a whole
	// nested status just to count it would be wasted work.
	RetweetedStatus json.RawMessage `json:"retweeted_status"`
	User            *user           `json:"user"`
	RetweetCount    *int64          `json:"retweet_count"`
	Text            *string         `json:"text"`
	Lang            *string         `json:"lang"`
	Entities        *entities       `json:"entities"`
}

type user struct {
	IDStr          *string `json:"id_str"`
	FollowersCount *int64  `json:"followers_count"`
}

type entities struct {
	Hashtags *[]*hashtag `json:"hashtags"`
}

type hashtag struct {
	Text *string `json:"text"`
}

// Summary is what POST /summarise answers and what the digest covers.
type Summary struct {
	Statuses          int64
	Retweets          int64
	Users             int64
	TotalFollowers    int64
	TotalRetweetCount int64
	TextChars         int64 // code points, not bytes
	Languages         map[string]int64
	TopHashtags       []TagCount // at most topHashtags, count desc then tag
}

// TagCount is one entry of Summary.TopHashtags.
type TagCount struct {
	Tag   string
	Count int64
}

// BadInput is a request the service refuses, with the status it maps to.
type BadInput struct {
	Status int    // HTTP status
	Kind   string // the "error" field of the JSON body
	Detail string // a sentence for a human
}

func (e *BadInput) Error() string { return e.Kind + ": " + e.Detail }

// --- limits ------------------------------------------------------------------

const (
	topHashtags = 10
	// Counts are u32 in fastjson-api. With at most 2 MiB of statuses, sums of
	// such counts stay far below 2^63, so the totals need no overflow check.
	countMax = math.MaxUint32
)

// --- the summary -------------------------------------------------------------

func wrongType(detail string) *BadInput {
	return &BadInput{Status: 422, Kind: "wrong_type", Detail: detail}
}

func missing(where, key string) *BadInput {
	return wrongType(fmt.Sprintf("%s: missing field %q (or null)", where, key))
}

// count checks a required count field and returns its value.
func count(v *int64, where, key string) (int64, error) {
	if v == nil {
		return 0, missing(where, key)
	}
	if *v < 0 || *v > countMax {
		return 0, wrongType(fmt.Sprintf("%s: %q must be an integer in 0..2^32-1", where, key))
	}
	return *v, nil
}

// Summarise parses body and summarises it; the error is always a *BadInput.
func Summarise(body []byte) (*Summary, error) {
	// encoding/json would quietly replace invalid UTF-8 with U+FFFD; the
	// Python and Rust versions refuse it, so this one does too.
	if !utf8.Valid(body) {
		return nil, &BadInput{Status: 400, Kind: "malformed_json", Detail: "the body is not valid UTF-8"}
	}
	var doc input
	if err := json.Unmarshal(body, &doc); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, wrongType(fmt.Sprintf("%q must be %s, not %s", typeErr.Field, typeErr.Type, typeErr.Value))
		}
		return nil, &BadInput{Status: 400, Kind: "malformed_json", Detail: "the body is not JSON: " + err.Error()}
	}
	if doc.Statuses == nil {
		return nil, missing("the body", "statuses")
	}

	var s Summary
	userIDs := make(map[string]struct{})
	s.Languages = make(map[string]int64)
	tags := make(map[string]int64)

	for _, st := range *doc.Statuses {
		if err := summariseStatus(&s, st, userIDs, tags); err != nil {
			return nil, err
		}
	}
	s.Users = int64(len(userIDs))

	s.TopHashtags = make([]TagCount, 0, len(tags))
	for tag, n := range tags {
		s.TopHashtags = append(s.TopHashtags, TagCount{Tag: tag, Count: n})
	}
	// Go compares strings byte by byte, which is code point order in UTF-8,
	// the same order Python and Rust use.
	sort.Slice(s.TopHashtags, func(i, j int) bool {
		a, b := s.TopHashtags[i], s.TopHashtags[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Tag < b.Tag
	})
	if len(s.TopHashtags) > topHashtags {
		s.TopHashtags = s.TopHashtags[:topHashtags]
	}
	return &s, nil
}

// summariseStatus checks one status and adds it to s.
func summariseStatus(s *Summary, st *status, userIDs map[string]struct{}, tags map[string]int64) error {
	if st == nil {
		return wrongType("each status must be an object")
	}
	switch {
	case st.IDStr == nil:
		return missing("status", "id_str")
	case st.User == nil:
		return missing("status", "user")
	case st.User.IDStr == nil:
		return missing("user", "id_str")
	case st.Text == nil:
		return missing("status", "text")
	case st.Lang == nil:
		return missing("status", "lang")
	case st.Entities == nil:
		return missing("status", "entities")
	case st.Entities.Hashtags == nil:
		return missing("entities", "hashtags")
	}
	followers, err := count(st.User.FollowersCount, "user", "followers_count")
	if err != nil {
		return err
	}
	retweetCount, err := count(st.RetweetCount, "status", "retweet_count")
	if err != nil {
		return err
	}

	switch raw := st.RetweetedStatus; {
	case len(raw) == 0 || string(raw) == "null":
	case raw[0] == '{':
		s.Retweets++
	default:
		return wrongType(`"retweeted_status" must be an object or null`)
	}
	for _, h := range *st.Entities.Hashtags {
		if h == nil {
			return wrongType("each hashtag must be an object")
		}
		if h.Text == nil {
			return missing("hashtag", "text")
		}
		tags[*h.Text]++
	}

	s.Statuses++
	userIDs[*st.User.IDStr] = struct{}{}
	s.TotalFollowers += followers
	s.TotalRetweetCount += retweetCount
	s.TextChars += int64(utf8.RuneCountInString(*st.Text))
	s.Languages[*st.Lang]++
	return nil
}

// --- canonical JSON ----------------------------------------------------------

// The digest compares bytes across languages, so the summary is written by
// hand in the form Python's json.dumps(sort_keys=True, separators=(",", ":"),
// ensure_ascii=False) gives. encoding/json cannot: it escapes <, >, & and
// U+2028/U+2029, and writes struct fields in declaration order.

// AppendCanonical appends the canonical JSON of s to b.
func (s *Summary) AppendCanonical(b []byte) []byte {
	langs := make([]string, 0, len(s.Languages))
	for lang := range s.Languages {
		langs = append(langs, lang)
	}
	sort.Strings(langs)

	// Keys in sorted order.
	b = append(b, `{"languages":{`...)
	for i, lang := range langs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, lang)
		b = append(b, ':')
		b = strconv.AppendInt(b, s.Languages[lang], 10)
	}
	b = appendIntField(b, `},"retweets":`, s.Retweets)
	b = appendIntField(b, `,"statuses":`, s.Statuses)
	b = appendIntField(b, `,"text_chars":`, s.TextChars)
	b = append(b, `,"top_hashtags":[`...)
	for i, t := range s.TopHashtags {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendIntField(b, `{"count":`, t.Count)
		b = append(b, `,"tag":`...)
		b = appendString(b, t.Tag)
		b = append(b, '}')
	}
	b = appendIntField(b, `],"total_followers":`, s.TotalFollowers)
	b = appendIntField(b, `,"total_retweet_count":`, s.TotalRetweetCount)
	b = appendIntField(b, `,"users":`, s.Users)
	return append(b, '}')
}

func appendIntField(b []byte, prefix string, n int64) []byte {
	return strconv.AppendInt(append(b, prefix...), n, 10)
}

// appendString writes s as a JSON string the way Python does with
// ensure_ascii=False: short escapes for the usual five controls, \u00xx in
// lower case for the other controls, everything else as UTF-8.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '\r':
			b = append(b, '\\', 'r')
		case c == '\t':
			b = append(b, '\\', 't')
		case c == '\b':
			b = append(b, '\\', 'b')
		case c == '\f':
			b = append(b, '\\', 'f')
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// errorBody is the JSON body of a refusal: {"detail": ..., "error": ...}.
func errorBody(e *BadInput) []byte {
	b := appendString([]byte(`{"detail":`), e.Detail)
	b = append(b, `,"error":`...)
	b = appendString(b, e.Kind)
	return append(b, '}')
}
