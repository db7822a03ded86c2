import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A small strict JSON reader and string writer, so the leak service needs
 * nothing beyond the JDK. Objects become LinkedHashMap, arrays ArrayList,
 * numbers Double, and true, false and null Boolean and null.
 */
final class Json {

    /** Deepest nesting accepted; the session body needs 2. */
    static final int MAX_DEPTH = 32;

    /** The text is not JSON (the service answers 400). */
    static final class MalformedException extends Exception {
        private static final long serialVersionUID = 1L;

        MalformedException(String message) {
            super(message);
        }
    }

    /**
     * The text is JSON, but no session body can look like it (422): a key
     * given twice, or nesting deeper than MAX_DEPTH.
     */
    static final class ShapeException extends Exception {
        private static final long serialVersionUID = 1L;

        ShapeException(String message) {
            super(message);
        }
    }

    private final String text;
    private int pos;

    private Json(String text) {
        this.text = text;
    }

    /** Parses one JSON value that must fill the whole text. */
    static Object parse(String text) throws MalformedException, ShapeException {
        Json reader = new Json(text);
        reader.skipSpace();
        Object value = reader.value(0);
        reader.skipSpace();
        if (reader.pos != text.length()) {
            throw reader.malformed("trailing characters after the JSON value");
        }
        return value;
    }

    /** Writes s as a JSON string literal, quotes included. */
    static String quote(String s) {
        StringBuilder out = new StringBuilder(s.length() + 2).append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        return out.append('"').toString();
    }

    private Object value(int depth) throws MalformedException, ShapeException {
        if (pos >= text.length()) {
            throw malformed("the body ends where a value should start");
        }
        char c = text.charAt(pos);
        return switch (c) {
            case '{' -> object(depth + 1);
            case '[' -> array(depth + 1);
            case '"' -> string();
            case 't' -> literal("true", Boolean.TRUE);
            case 'f' -> literal("false", Boolean.FALSE);
            case 'n' -> literal("null", null);
            default -> {
                if (c == '-' || (c >= '0' && c <= '9')) {
                    yield number();
                }
                throw malformed("unexpected character '" + c + "'");
            }
        };
    }

    private Map<String, Object> object(int depth) throws MalformedException, ShapeException {
        checkDepth(depth);
        pos++; // the '{'
        Map<String, Object> members = new LinkedHashMap<>();
        skipSpace();
        if (peek() == '}') {
            pos++;
            return members;
        }
        while (true) {
            skipSpace();
            if (peek() != '"') {
                throw malformed("an object key must be a string");
            }
            String key = string();
            skipSpace();
            expect(':');
            skipSpace();
            if (members.containsKey(key)) {
                throw new ShapeException("the key \"" + key + "\" appears twice");
            }
            members.put(key, value(depth));
            skipSpace();
            char next = next();
            if (next == '}') {
                return members;
            }
            if (next != ',') {
                throw malformed("expected ',' or '}' in an object");
            }
        }
    }

    private List<Object> array(int depth) throws MalformedException, ShapeException {
        checkDepth(depth);
        pos++; // the '['
        List<Object> elements = new ArrayList<>();
        skipSpace();
        if (peek() == ']') {
            pos++;
            return elements;
        }
        while (true) {
            skipSpace();
            elements.add(value(depth));
            skipSpace();
            char next = next();
            if (next == ']') {
                return elements;
            }
            if (next != ',') {
                throw malformed("expected ',' or ']' in an array");
            }
        }
    }

    private String string() throws MalformedException {
        pos++; // the opening quote
        StringBuilder out = new StringBuilder();
        while (true) {
            char c = next();
            if (c == '"') {
                return out.toString();
            }
            if (c < 0x20) {
                throw malformed("a control character inside a string");
            }
            if (c != '\\') {
                out.append(c);
                continue;
            }
            char escape = next();
            switch (escape) {
                case '"', '\\', '/' -> out.append(escape);
                case 'b' -> out.append('\b');
                case 'f' -> out.append('\f');
                case 'n' -> out.append('\n');
                case 'r' -> out.append('\r');
                case 't' -> out.append('\t');
                case 'u' -> out.append(hexChar());
                default -> throw malformed("unknown escape \\" + escape);
            }
        }
    }

    private char hexChar() throws MalformedException {
        if (pos + 4 > text.length()) {
            throw malformed("a \\u escape needs four hex digits");
        }
        int code = 0;
        for (int i = 0; i < 4; i++) {
            int digit = Character.digit(text.charAt(pos++), 16);
            if (digit < 0) {
                throw malformed("a \\u escape needs four hex digits");
            }
            code = code * 16 + digit;
        }
        return (char) code;
    }

    private Double number() throws MalformedException {
        int start = pos;
        if (peek() == '-') {
            pos++;
        }
        if (peek() == '0') {
            pos++;
        } else if (!digits()) {
            throw malformed("a number needs digits");
        }
        if (peek() == '.') {
            pos++;
            if (!digits()) {
                throw malformed("a number needs digits after '.'");
            }
        }
        if (peek() == 'e' || peek() == 'E') {
            pos++;
            if (peek() == '+' || peek() == '-') {
                pos++;
            }
            if (!digits()) {
                throw malformed("a number needs digits in its exponent");
            }
        }
        return Double.valueOf(text.substring(start, pos));
    }

    private boolean digits() {
        int start = pos;
        while (pos < text.length() && text.charAt(pos) >= '0' && text.charAt(pos) <= '9') {
            pos++;
        }
        return pos > start;
    }

    private Object literal(String word, Object value) throws MalformedException {
        if (!text.startsWith(word, pos)) {
            throw malformed("unexpected word");
        }
        pos += word.length();
        return value;
    }

    private void checkDepth(int depth) throws ShapeException {
        if (depth > MAX_DEPTH) {
            throw new ShapeException("nested deeper than " + MAX_DEPTH + " levels");
        }
    }

    private void skipSpace() {
        while (pos < text.length()) {
            char c = text.charAt(pos);
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                return;
            }
            pos++;
        }
    }

    /** The current character, or 0 at the end (0 is never valid JSON here). */
    private char peek() {
        return pos < text.length() ? text.charAt(pos) : 0;
    }

    private char next() throws MalformedException {
        if (pos >= text.length()) {
            throw malformed("the body ends too early");
        }
        return text.charAt(pos++);
    }

    private void expect(char wanted) throws MalformedException {
        if (next() != wanted) {
            throw malformed("expected '" + wanted + "'");
        }
    }

    private MalformedException malformed(String what) {
        return new MalformedException(what + " at character " + pos);
    }
}
