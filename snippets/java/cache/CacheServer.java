import java.io.BufferedOutputStream;
import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.ZoneOffset;
import java.time.ZonedDateTime;
import java.time.format.DateTimeFormatter;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * CacheServer is the legacy caching service of the cache chapter, written the
 * way such services were before NIO frameworks and virtual threads: a
 * blocking ServerSocket, one platform thread per accepted connection that
 * lives as long as the connection, a hand-written HTTP/1.1 parser, and a
 * ConcurrentHashMap holding the values.
 *
 * <p>What the reader should notice: every idle keep-alive connection holds a
 * whole thread (its stack, its buffers) although it does nothing. That is the
 * cost the article attributes to the legacy design.
 *
 * <p>Minimal HTTP only: Content-Length bodies, no chunked requests (they get
 * 411), no pipelining guarantees beyond reading requests in order.
 */
public final class CacheServer {

    // ---- types ----

    /** One parsed request; header names are lower-cased. */
    static final class Request {
        final String method;
        final String target;
        final boolean http10;
        final Map<String, String> headers;
        final byte[] body;

        Request(String method, String target, boolean http10,
                Map<String, String> headers, byte[] body) {
            this.method = method;
            this.target = target;
            this.http10 = http10;
            this.headers = headers;
            this.body = body;
        }
    }

    /** One answer; allow is the Allow header of a 405, else null. */
    static final class Response {
        final int status;
        final String contentType;
        final byte[] body;
        final String allow;

        Response(int status, String contentType, byte[] body, String allow) {
            this.status = status;
            this.contentType = contentType;
            this.body = body;
            this.allow = allow;
        }
    }

    /** Input the parser refuses; the connection is closed after the answer. */
    static final class BadInput extends Exception {
        private static final long serialVersionUID = 1L;
        final int status;
        final String kind;

        BadInput(int status, String kind, String detail) {
            super(detail);
            this.status = status;
            this.kind = kind;
        }
    }

    /** One accepted connection and whether a request is in progress on it. */
    static final class Connection {
        final Socket socket;
        volatile boolean busy;

        Connection(Socket socket) {
            this.socket = socket;
        }
    }

    /** The values. Keys are byte strings (see decodeKey); values immutable. */
    private final ConcurrentHashMap<String, byte[]> values = new ConcurrentHashMap<>();

    // ---- handlers ----

    Response handle(Request request) {
        String path = request.target;
        int query = path.indexOf('?');
        if (query >= 0) {
            path = path.substring(0, query);
        }

        if (path.equals("/health")) {
            if (!request.method.equals("GET")) {
                return methodNotAllowed("GET");
            }
            String body = "{\"status\":\"ok\",\"store\":\"concurrenthashmap\",\"keys\":"
                    + values.size() + "}";
            return new Response(200, "application/json",
                    body.getBytes(StandardCharsets.UTF_8), null);
        }
        if (!path.startsWith(CACHE_PREFIX)) {
            return error(404, "not_found", "no such endpoint; use /cache/{key} or /health");
        }
        String rawKey = path.substring(CACHE_PREFIX.length());
        // A key is one path segment: /cache/a/b is another path, not a key.
        if (rawKey.indexOf('/') >= 0) {
            return error(404, "not_found", "a key is a single path segment: /cache/{key}");
        }
        String method = request.method;
        if (!method.equals("GET") && !method.equals("PUT") && !method.equals("DELETE")) {
            return methodNotAllowed("GET, PUT, DELETE");
        }
        String key = decodeKey(rawKey);
        if (key == null) {
            return error(400, "bad_key", "the key is not a valid percent-encoded path segment");
        }
        if (key.isEmpty()) {
            return error(400, "empty_key", "the key must not be empty: /cache/{key}");
        }
        // decodeKey maps one byte to one char, so length() counts bytes.
        if (key.length() > MAX_KEY_BYTES) {
            return error(414, "key_too_long", "the key is " + key.length()
                    + " bytes; the limit is " + MAX_KEY_BYTES + " bytes");
        }

        switch (method) {
            case "GET": {
                byte[] value = values.get(key);
                if (value == null) {
                    return error(404, "not_found", "no value under this key");
                }
                return new Response(200, "application/octet-stream", value, null);
            }
            case "PUT":
                // The body array is fresh per request, so the map may keep it.
                values.put(key, request.body);
                return new Response(204, null, EMPTY, null);
            default:
                values.remove(key);
                return new Response(204, null, EMPTY, null);
        }
    }

    /**
     * Percent-decodes one path segment into a String holding one char per
     * byte (ISO-8859-1), so any byte sequence is a distinct key and length()
     * is the size in bytes. Returns null on a malformed escape.
     */
    static String decodeKey(String raw) {
        byte[] out = new byte[raw.length()];
        int n = 0;
        for (int i = 0; i < raw.length(); i++) {
            char c = raw.charAt(i);
            if (c == '%') {
                if (i + 2 >= raw.length()) {
                    return null;
                }
                int high = Character.digit(raw.charAt(i + 1), 16);
                int low = Character.digit(raw.charAt(i + 2), 16);
                if (high < 0 || low < 0) {
                    return null;
                }
                out[n++] = (byte) (high * 16 + low);
                i += 2;
            } else {
                // The request line was read as ISO-8859-1: c is one byte.
                out[n++] = (byte) c;
            }
        }
        return new String(out, 0, n, StandardCharsets.ISO_8859_1);
    }

    static Response methodNotAllowed(String allow) {
        Response r = error(405, "method_not_allowed", "this endpoint accepts " + allow);
        return new Response(r.status, r.contentType, r.body, allow);
    }

    /** The JSON error body; details are fixed text, so nothing needs escaping. */
    static Response error(int status, String kind, String detail) {
        String body = "{\"error\":\"" + kind + "\",\"detail\":\"" + detail + "\"}";
        return new Response(status, "application/json",
                body.getBytes(StandardCharsets.UTF_8), null);
    }

    // ---- limits ----

    /** The longest key in bytes after percent-decoding (memcached's limit). */
    static final int MAX_KEY_BYTES = 250;
    /** The largest value: 1 MiB. */
    static final int MAX_VALUE_BYTES = 1 << 20;
    /** Request line plus headers; the same ceiling as the Go service. */
    static final int MAX_HEADER_BYTES = 64 * 1024;
    /** More headers than any client sends; stops a header flood. */
    static final int MAX_HEADER_COUNT = 100;
    /**
     * How long a keep-alive connection may sit idle between requests. Above
     * the 60 s for which the bench holds 10,000 idle connections.
     */
    static final int IDLE_TIMEOUT_MS = 120_000;
    /** How long one read may stall once a request has begun (as in Go). */
    static final int REQUEST_TIMEOUT_MS = 30_000;
    /** Pending connections the kernel queues while threads are being made. */
    static final int ACCEPT_BACKLOG = 4096;
    /** Per-connection read buffer, BufferedInputStream's default size. */
    static final int READ_BUFFER_BYTES = 8192;
    /** Time requests in flight get to finish at shutdown (contract: 5 s). */
    static final long SHUTDOWN_GRACE_MS = 3_000;

    /** How long and how much a refused upload is drained before closing. */
    static final int LINGER_MS = 1_000;
    static final long LINGER_DRAIN_BYTES = 2L * MAX_VALUE_BYTES;

    static final String CACHE_PREFIX = "/cache/";
    static final byte[] EMPTY = new byte[0];
    static final DateTimeFormatter HTTP_DATE =
            DateTimeFormatter.ofPattern("EEE, dd MMM yyyy HH:mm:ss 'GMT'", Locale.US);

    // ---- the HTTP/1.1 reading and writing ----

    /** A buffered reader over the socket that yields lines and exact bodies. */
    static final class RequestReader {
        private final InputStream in;
        private final byte[] buffer = new byte[READ_BUFFER_BYTES];
        private int start;
        private int end;

        RequestReader(InputStream in) {
            this.in = in;
        }

        /** Returns false at a clean end of stream, true when a byte is ready. */
        boolean fill() throws IOException {
            if (start < end) {
                return true;
            }
            int n = in.read(buffer, 0, buffer.length);
            if (n <= 0) {
                return false;
            }
            start = 0;
            end = n;
            return true;
        }

        /** One line without its CRLF, as ISO-8859-1; budget[0] is decremented. */
        String readLine(int[] budget) throws IOException, BadInput {
            ByteArrayOutputStream line = new ByteArrayOutputStream(128);
            while (true) {
                if (!fill()) {
                    throw new EOFException("connection closed inside the headers");
                }
                byte b = buffer[start++];
                if (--budget[0] < 0) {
                    throw new BadInput(431, "headers_too_large",
                            "the request line and headers exceed " + MAX_HEADER_BYTES + " bytes");
                }
                if (b == '\n') {
                    byte[] bytes = line.toByteArray();
                    int length = bytes.length;
                    if (length > 0 && bytes[length - 1] == '\r') {
                        length--;
                    }
                    return new String(bytes, 0, length, StandardCharsets.ISO_8859_1);
                }
                line.write(b);
            }
        }

        byte[] readBody(int length) throws IOException {
            byte[] body = new byte[length];
            int n = 0;
            while (n < length) {
                if (!fill()) {
                    throw new EOFException("connection closed inside the body");
                }
                int chunk = Math.min(length - n, end - start);
                System.arraycopy(buffer, start, body, n, chunk);
                start += chunk;
                n += chunk;
            }
            return body;
        }
    }

    /**
     * Reads one request, or returns null when the client closed the connection
     * between requests. out is needed to send 100 Continue.
     */
    static Request readRequest(RequestReader reader, OutputStream out, Connection conn)
            throws IOException, BadInput {
        // Waiting for the first byte is the idle part of keep-alive.
        conn.socket.setSoTimeout(IDLE_TIMEOUT_MS);
        if (!reader.fill()) {
            return null;
        }
        conn.busy = true;
        conn.socket.setSoTimeout(REQUEST_TIMEOUT_MS);

        int[] budget = {MAX_HEADER_BYTES};
        String requestLine = reader.readLine(budget);
        String[] parts = requestLine.split(" ", -1);
        if (parts.length != 3 || parts[0].isEmpty() || !parts[1].startsWith("/")
                || !parts[2].startsWith("HTTP/1.")) {
            throw new BadInput(400, "bad_request", "the request line is not METHOD /path HTTP/1.x");
        }
        boolean http10 = parts[2].equals("HTTP/1.0");

        Map<String, String> headers = new HashMap<>();
        while (true) {
            String line = reader.readLine(budget);
            if (line.isEmpty()) {
                break;
            }
            int colon = line.indexOf(':');
            if (colon <= 0) {
                throw new BadInput(400, "bad_request", "a header line has no name");
            }
            if (headers.size() >= MAX_HEADER_COUNT) {
                throw new BadInput(431, "headers_too_large",
                        "more than " + MAX_HEADER_COUNT + " headers");
            }
            String name = line.substring(0, colon).trim().toLowerCase(Locale.ROOT);
            String value = line.substring(colon + 1).trim();
            String previous = headers.put(name, value);
            if (name.equals("content-length") && previous != null && !previous.equals(value)) {
                throw new BadInput(400, "bad_request", "conflicting Content-Length headers");
            }
        }

        if (headers.containsKey("transfer-encoding")) {
            throw new BadInput(411, "length_required",
                    "chunked bodies are not supported; send Content-Length");
        }
        int length = 0;
        String declared = headers.get("content-length");
        if (declared != null) {
            long parsed;
            try {
                parsed = Long.parseLong(declared);
            } catch (NumberFormatException e) {
                parsed = -1;
            }
            if (parsed < 0) {
                throw new BadInput(400, "bad_request", "Content-Length is not a byte count");
            }
            // Refuse before reading a byte of it, and close: the body is unread.
            if (parsed > MAX_VALUE_BYTES) {
                throw new BadInput(413, "value_too_large",
                        "the value is over the limit of " + MAX_VALUE_BYTES + " bytes");
            }
            length = (int) parsed;
        }
        if (length > 0 && "100-continue".equalsIgnoreCase(headers.get("expect"))) {
            out.write("HTTP/1.1 100 Continue\r\n\r\n".getBytes(StandardCharsets.ISO_8859_1));
            out.flush();
        }
        byte[] body = length == 0 ? EMPTY : reader.readBody(length);
        return new Request(parts[0], parts[1], http10, headers, body);
    }

    static void writeResponse(OutputStream out, Response response, boolean close)
            throws IOException {
        StringBuilder head = new StringBuilder(160);
        head.append("HTTP/1.1 ").append(response.status).append(' ')
                .append(reason(response.status)).append("\r\n");
        head.append("Date: ").append(HTTP_DATE.format(ZonedDateTime.now(ZoneOffset.UTC)))
                .append("\r\n");
        if (response.contentType != null) {
            head.append("Content-Type: ").append(response.contentType).append("\r\n");
        }
        if (response.allow != null) {
            head.append("Allow: ").append(response.allow).append("\r\n");
        }
        if (response.status != 204) {
            head.append("Content-Length: ").append(response.body.length).append("\r\n");
        }
        head.append(close ? "Connection: close\r\n" : "Connection: keep-alive\r\n");
        head.append("\r\n");
        out.write(head.toString().getBytes(StandardCharsets.ISO_8859_1));
        out.write(response.body);
        out.flush();
    }

    static String reason(int status) {
        switch (status) {
            case 200: return "OK";
            case 204: return "No Content";
            case 400: return "Bad Request";
            case 404: return "Not Found";
            case 405: return "Method Not Allowed";
            case 411: return "Length Required";
            case 413: return "Content Too Large";
            case 414: return "URI Too Long";
            case 431: return "Request Header Fields Too Large";
            default: return "Internal Server Error";
        }
    }

    /** The body of one connection's thread: requests in order until it closes. */
    void serve(Connection conn) {
        Socket socket = conn.socket;
        try (socket) {
            // The Go service's sockets have TCP_NODELAY by default; match it.
            socket.setTcpNoDelay(true);
            RequestReader reader = new RequestReader(socket.getInputStream());
            OutputStream out = new BufferedOutputStream(socket.getOutputStream());
            while (!shuttingDown) {
                Request request;
                try {
                    request = readRequest(reader, out, conn);
                } catch (BadInput e) {
                    writeResponse(out, error(e.status, e.kind, e.getMessage()), true);
                    lingeringClose(socket, reader);
                    return;
                }
                if (request == null) {
                    return;
                }
                Response response = handle(request);
                boolean close = wantsClose(request) || shuttingDown;
                writeResponse(out, response, close);
                conn.busy = false;
                if (close) {
                    return;
                }
            }
        } catch (SocketTimeoutException | EOFException e) {
            // An idle client timed out or hung up mid-request: just close.
        } catch (IOException e) {
            // Reset by the peer or closed at shutdown: nothing to answer.
        } finally {
            conn.busy = false;
            connections.remove(conn);
        }
    }

    /**
     * After refusing a request whose body is still arriving, stop sending and
     * read (and discard) what the client is still sending for a short while:
     * closing with unread data makes the kernel send a reset, which can
     * destroy the answer before the client reads it.
     */
    static void lingeringClose(Socket socket, RequestReader reader) throws IOException {
        socket.shutdownOutput();
        socket.setSoTimeout(LINGER_MS);
        long deadlineMs = System.currentTimeMillis() + LINGER_MS;
        long drainedBytes = 0;
        while (drainedBytes < LINGER_DRAIN_BYTES && System.currentTimeMillis() < deadlineMs) {
            if (!reader.fill()) {
                return;
            }
            drainedBytes += reader.end - reader.start;
            reader.start = reader.end;
        }
    }

    static boolean wantsClose(Request request) {
        String connection = request.headers.getOrDefault("connection", "");
        if (request.http10) {
            return !connection.equalsIgnoreCase("keep-alive");
        }
        return connection.equalsIgnoreCase("close");
    }

    // ---- start and graceful shutdown ----

    private final Set<Connection> connections = ConcurrentHashMap.newKeySet();
    private volatile boolean shuttingDown;
    private final AtomicLong threadsRefused = new AtomicLong();

    public static void main(String[] args) throws IOException {
        int port = parsePort(args);
        CacheServer server = new CacheServer();
        // Loopback only: the service is never reachable from another host.
        InetAddress loopback = InetAddress.getByAddress(new byte[] {127, 0, 0, 1});
        ServerSocket listener = new ServerSocket(port, ACCEPT_BACKLOG, loopback);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> server.shutdown(listener)));

        System.out.println("listening on 127.0.0.1:" + listener.getLocalPort());
        System.out.flush();
        System.err.println("CacheServer: store=concurrenthashmap maxHeap="
                + Runtime.getRuntime().maxMemory() / (1024 * 1024) + "MiB");
        server.acceptLoop(listener);
    }

    static int parsePort(String[] args) {
        int port = -1;
        for (int i = 0; i < args.length; i++) {
            if (args[i].equals("--port") && i + 1 < args.length) {
                try {
                    port = Integer.parseInt(args[++i]);
                } catch (NumberFormatException e) {
                    port = -1;
                }
            } else {
                usage("unknown argument " + args[i]);
            }
        }
        if (port < 0 || port > 65535) {
            usage("--port N is required, 0 to 65535 (0 lets the OS pick)");
        }
        return port;
    }

    static void usage(String problem) {
        System.err.println("CacheServer: " + problem);
        System.err.println("usage: java -Xms2g -Xmx2g -cp OUT CacheServer --port N");
        System.exit(2);
    }

    /** One new platform thread per accepted connection, as legacy servers did. */
    void acceptLoop(ServerSocket listener) {
        long connectionNumber = 0;
        while (!shuttingDown) {
            Socket socket;
            try {
                socket = listener.accept();
            } catch (IOException e) {
                if (!shuttingDown) {
                    System.err.println("CacheServer: accept failed: " + e.getMessage());
                }
                return;
            }
            Connection conn = new Connection(socket);
            connections.add(conn);
            Thread thread = new Thread(() -> serve(conn), "conn-" + (++connectionNumber));
            thread.setDaemon(true);
            try {
                thread.start();
            } catch (OutOfMemoryError e) {
                // The OS refused another thread: this is the legacy design's
                // ceiling. Say so once, not per connection.
                connections.remove(conn);
                closeQuietly(socket);
                if (threadsRefused.getAndIncrement() == 0) {
                    System.err.println("CacheServer: cannot start a thread for a connection ("
                            + e.getMessage() + "); refusing connections until threads free up");
                }
            }
        }
    }

    /**
     * Runs on SIGTERM or SIGINT: stop accepting, close idle connections at
     * once, give requests in flight SHUTDOWN_GRACE_MS, then close the rest.
     */
    void shutdown(ServerSocket listener) {
        shuttingDown = true;
        closeQuietly(listener);
        long deadlineMs = System.currentTimeMillis() + SHUTDOWN_GRACE_MS;
        while (true) {
            boolean anyBusy = false;
            for (Connection conn : connections) {
                if (conn.busy) {
                    anyBusy = true;
                } else {
                    closeQuietly(conn.socket);
                }
            }
            if (!anyBusy || System.currentTimeMillis() > deadlineMs) {
                break;
            }
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                break;
            }
        }
        for (Connection conn : connections) {
            closeQuietly(conn.socket);
        }
        if (threadsRefused.get() > 0) {
            System.err.println("CacheServer: " + threadsRefused.get()
                    + " connections refused for want of a thread");
        }
        System.err.println("CacheServer: stopped");
    }

    static void closeQuietly(AutoCloseable closeable) {
        try {
            closeable.close();
        } catch (Exception e) {
            // Closing at shutdown: a failure changes nothing.
        }
    }
}
