import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;

/**
 * A small JSON reader, written here so the service needs nothing beyond the
 * JDK. It works the way Jackson's data binding does: it walks the text once
 * and the caller builds typed objects as it goes, skipping fields it does not
 * know. {@link #validate} makes a first pass that only checks the syntax, so
 * a body with both a syntax fault and a type fault is reported as a syntax
 * fault, as Go's encoding/json reports it.
 */
final class JsonReader {
    /** The text is not JSON: the service answers 400. */
    static final class SyntaxError extends Exception {
        SyntaxError(String message) {
            super(message);
        }
    }

    /** The text is JSON of the wrong shape: the service answers 422. */
    static final class TypeError extends Exception {
        TypeError(String message) {
            super(message);
        }
    }

    /**
     * Deeper bodies are a syntax fault. The Go and Rust services check the
     * same limit, and it keeps this recursive reader far from a stack overflow.
     */
    static final int MAX_NESTING_DEPTH = 128;

    private final String text;
    private int pos;

    JsonReader(String text) {
        this.text = text;
    }

    /** Checks that text is one JSON value with only whitespace around it. */
    static void validate(String text) throws SyntaxError {
        JsonReader reader = new JsonReader(text);
        reader.skipWhitespace();
        reader.skipValue(0);
        reader.skipWhitespace();
        if (reader.pos != text.length()) {
            throw reader.syntax("trailing characters");
        }
    }

    // -- reading values the caller expects (the text is already valid) ----

    /** True and consumes the literal if the next value is null. */
    boolean nextIsNull() {
        skipWhitespace();
        if (text.startsWith("null", pos)) {
            pos += 4;
            return true;
        }
        return false;
    }

    String readString(String field) throws TypeError, SyntaxError {
        skipWhitespace();
        if (peek() != '"') {
            throw typeError(field, "a string");
        }
        return parseString();
    }

    /** An integer that fits a Java long; 1.0 or 1e3 is not one, as in Go. */
    long readLong(String field) throws TypeError, SyntaxError {
        skipWhitespace();
        int start = pos;
        char first = peek();
        if (first != '-' && (first < '0' || first > '9')) {
            throw typeError(field, "an integer");
        }
        skipNumber();
        String literal = text.substring(start, pos);
        try {
            return Long.parseLong(literal);
        } catch (NumberFormatException e) {
            throw new TypeError(field + ": " + literal + " is not a 64-bit integer");
        }
    }

    /** Reads an array, or null as an empty list, with one element per call. */
    <T> List<T> readArray(String field, Element<T> element) throws TypeError, SyntaxError {
        List<T> items = new ArrayList<>();
        if (nextIsNull()) {
            return items;
        }
        if (peek() != '[') {
            throw typeError(field, "an array");
        }
        pos++;
        skipWhitespace();
        if (peek() == ']') {
            pos++;
            return items;
        }
        while (true) {
            items.add(element.read(this));
            skipWhitespace();
            if (text.charAt(pos++) == ']') {
                return items;
            }
        }
    }

    /** Calls field.read once per key of an object; unknown keys are skipped. */
    void readObject(String field, Field fields) throws TypeError, SyntaxError {
        skipWhitespace();
        if (peek() != '{') {
            throw typeError(field, "an object");
        }
        pos++;
        skipWhitespace();
        if (peek() == '}') {
            pos++;
            return;
        }
        while (true) {
            skipWhitespace();
            String key = parseString();
            skipWhitespace();
            pos++; // the colon
            skipWhitespace();
            if (!fields.read(key, this)) {
                skipValue(0);
            }
            skipWhitespace();
            if (text.charAt(pos++) == '}') {
                return;
            }
        }
    }

    /** Reads one array element. */
    interface Element<T> {
        T read(JsonReader reader) throws TypeError, SyntaxError;
    }

    /** Reads the value of a known key and returns true, or returns false. */
    interface Field {
        boolean read(String key, JsonReader reader) throws TypeError, SyntaxError;
    }

    /** An element that is null reads as fallback's value, as Go reads it. */
    static <T> Element<T> orDefault(Element<T> element, Supplier<T> fallback) {
        return reader -> reader.nextIsNull() ? fallback.get() : element.read(reader);
    }

    // -- the grammar --------------------------------------------------------

    private void skipValue(int depth) throws SyntaxError {
        skipWhitespace();
        char c = peek();
        if (c == '{' || c == '[') {
            if (depth + 1 > MAX_NESTING_DEPTH) {
                throw syntax("nesting deeper than " + MAX_NESTING_DEPTH + " levels");
            }
            skipContainer(c == '{', depth + 1);
        } else if (c == '"') {
            parseString();
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            skipNumber();
        } else if (!skipLiteral("true") && !skipLiteral("false") && !skipLiteral("null")) {
            throw syntax("unexpected " + describe(c));
        }
    }

    private void skipContainer(boolean isObject, int depth) throws SyntaxError {
        char close = isObject ? '}' : ']';
        pos++;
        skipWhitespace();
        if (peek() == close) {
            pos++;
            return;
        }
        while (true) {
            skipWhitespace();
            if (isObject) {
                if (peek() != '"') {
                    throw syntax("expected a key");
                }
                parseString();
                skipWhitespace();
                if (peek() != ':') {
                    throw syntax("expected ':'");
                }
                pos++;
            }
            skipValue(depth);
            skipWhitespace();
            char c = peek();
            pos++;
            if (c == close) {
                return;
            }
            if (c != ',') {
                throw syntax("expected ',' or '" + close + "'");
            }
        }
    }

    private boolean skipLiteral(String literal) {
        if (text.startsWith(literal, pos)) {
            pos += literal.length();
            return true;
        }
        return false;
    }

    /** -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
    private void skipNumber() throws SyntaxError {
        if (peek() == '-') {
            pos++;
        }
        if (peek() == '0') {
            pos++;
        } else if (!skipDigits()) {
            throw syntax("a number needs digits");
        }
        if (peek() == '.') {
            pos++;
            if (!skipDigits()) {
                throw syntax("a fraction needs digits");
            }
        }
        if (peek() == 'e' || peek() == 'E') {
            pos++;
            if (peek() == '+' || peek() == '-') {
                pos++;
            }
            if (!skipDigits()) {
                throw syntax("an exponent needs digits");
            }
        }
    }

    private boolean skipDigits() {
        int start = pos;
        while (peek() >= '0' && peek() <= '9') {
            pos++;
        }
        return pos > start;
    }

    private String parseString() throws SyntaxError {
        pos++; // the opening quote
        StringBuilder out = new StringBuilder();
        while (true) {
            if (pos >= text.length()) {
                throw syntax("unterminated string");
            }
            char c = text.charAt(pos++);
            if (c == '"') {
                return out.toString();
            }
            if (c < 0x20) {
                throw syntax("control character in a string");
            }
            if (c != '\\') {
                out.append(c);
                continue;
            }
            char escape = pos < text.length() ? text.charAt(pos++) : 0;
            switch (escape) {
                case '"', '\\', '/' -> out.append(escape);
                case 'b' -> out.append('\b');
                case 'f' -> out.append('\f');
                case 'n' -> out.append('\n');
                case 'r' -> out.append('\r');
                case 't' -> out.append('\t');
                case 'u' -> out.append(parseHex4());
                default -> throw syntax("bad escape");
            }
        }
    }

    private char parseHex4() throws SyntaxError {
        if (pos + 4 > text.length()) {
            throw syntax("short \\u escape");
        }
        int value = 0;
        for (int i = 0; i < 4; i++) {
            int digit = Character.digit(text.charAt(pos++), 16);
            if (digit < 0) {
                throw syntax("bad \\u escape");
            }
            value = value * 16 + digit;
        }
        return (char) value;
    }

    private void skipWhitespace() {
        while (pos < text.length()) {
            char c = text.charAt(pos);
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                return;
            }
            pos++;
        }
    }

    /** The next char, or 0 at the end, so callers need no bounds checks. */
    private char peek() {
        return pos < text.length() ? text.charAt(pos) : 0;
    }

    private SyntaxError syntax(String what) {
        return new SyntaxError(what + " at character " + pos);
    }

    private TypeError typeError(String field, String wanted) {
        return new TypeError(field + " should be " + wanted + " at character " + pos);
    }

    private static String describe(char c) {
        return c == 0 ? "end of input" : "'" + c + "'";
    }
}
