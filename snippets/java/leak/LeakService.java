import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A session service that leaks on purpose: every session goes into a static
 * registry that nothing ever cleans, so under steady load the heap fills
 * until the JVM throws OutOfMemoryError (and, with
 * -XX:+ExitOnOutOfMemoryError, exits with code 3).
 *
 * <p>Run: {@code java -Xmx64m -XX:+ExitOnOutOfMemoryError -cp OUT LeakService
 * --port 0 --leak-bytes 16384}
 */
public final class LeakService {

    // ------------------------------------------------------------------
    // Types
    // ------------------------------------------------------------------

    /** What one request leaves behind: the parsed request and its buffer. */
    record Session(String user, List<String> items, byte[] payload) {}

    /** A request the service refuses, with the status and kind it answers. */
    static final class Refusal extends Exception {
        private static final long serialVersionUID = 1L;

        final int status;
        final String kind;

        Refusal(int status, String kind, String detail) {
            super(detail);
            this.status = status;
            this.kind = kind;
        }
    }

    /*
     * THE LEAK. A static map is a GC root: everything it references stays
     * reachable for the life of the JVM, so the collector may not free it,
     * however hard it works. Real code rarely writes this line on purpose;
     * it gets the same effect from a listener registered per request and
     * never removed, a cache with no eviction or size bound, a ThreadLocal
     * on a pooled thread that is set and never cleared, or a "registry" of
     * sessions keyed by id whose remove() was lost in a refactor. Here the
     * map is written on every POST /sessions and never cleaned.
     */
    static final Map<String, Session> SESSIONS = new ConcurrentHashMap<>();

    private static final AtomicLong NEXT_ID = new AtomicLong(1);

    // ------------------------------------------------------------------
    // Handlers
    // ------------------------------------------------------------------

    /** POST /sessions: stores a session and answers its id. */
    static String createSession(byte[] body, int leakBytes) throws Refusal {
        Map<String, Object> fields = parseObject(body);
        String user = fields.get("user") instanceof String s ? s : null;
        List<String> items = stringList(fields.get("items"));
        Set<String> unknown = new TreeSet<>(fields.keySet());
        unknown.removeAll(Set.of("user", "items"));
        if (user == null || items == null || !unknown.isEmpty()) {
            throw new Refusal(422, "wrong_type",
                "the body must be {\"user\": string, \"items\": [string, ...]}"
                    + " and nothing else");
        }

        // A non-zero fill writes every page of the buffer, as the Rust
        // service does, so the memory it holds is real memory.
        long id = NEXT_ID.getAndIncrement();
        byte[] payload = new byte[leakBytes];
        Arrays.fill(payload, (byte) (id % 251 + 1));
        SESSIONS.put(Long.toString(id), new Session(user, items, payload));
        return "{\"session\":" + id + ",\"items\":" + items.size() + "}";
    }

    /** GET /sessions/{id}: what the registry holds for one session. */
    static String showSession(String idText) throws Refusal {
        if (!idText.matches("[0-9]{1,18}")) {
            throw new Refusal(400, "bad_id", "the session id must be a non-negative integer");
        }
        String key = Long.toString(Long.parseLong(idText));
        Session session = SESSIONS.get(key);
        if (session == null) {
            throw new Refusal(404, "not_found", "no session " + key + " is held");
        }
        return "{\"session\":" + key + ",\"user\":" + Json.quote(session.user())
            + ",\"items\":" + session.items().size()
            + ",\"payload_bytes\":" + session.payload().length + "}";
    }

    /** GET /stats: sessions held, heap used and collector totals. */
    static String stats() {
        long heapUsedBytes = ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
        long gcTimeMs = 0;
        long gcCount = 0;
        for (GarbageCollectorMXBean gc : ManagementFactory.getGarbageCollectorMXBeans()) {
            // -1 means this collector does not report the figure.
            gcTimeMs += Math.max(0, gc.getCollectionTime());
            gcCount += Math.max(0, gc.getCollectionCount());
        }
        return "{\"sessions\":" + SESSIONS.size() + ",\"heap_used_bytes\":" + heapUsedBytes
            + ",\"gc_time_ms\":" + gcTimeMs + ",\"gc_count\":" + gcCount + "}";
    }

    /** Routes one exchange; every answer, refusals included, is JSON. */
    static void handle(HttpExchange exchange, int leakBytes) throws IOException {
        String method = exchange.getRequestMethod();
        String path = exchange.getRequestURI().getPath();
        int status = 200;
        String answer;
        try {
            if (path.equals("/sessions")) {
                requireMethod(method, "POST");
                answer = createSession(readBody(exchange), leakBytes);
            } else if (path.startsWith("/sessions/")) {
                requireMethod(method, "GET");
                answer = showSession(path.substring("/sessions/".length()));
            } else if (path.equals("/stats")) {
                requireMethod(method, "GET");
                answer = stats();
            } else {
                throw new Refusal(404, "not_found",
                    "no such endpoint: try POST /sessions, GET /sessions/{id} or GET /stats");
            }
        } catch (Refusal refusal) {
            status = refusal.status;
            answer = "{\"error\":" + Json.quote(refusal.kind)
                + ",\"detail\":" + Json.quote(refusal.getMessage()) + "}";
        }

        byte[] bytes = answer.getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", "application/json");
        exchange.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(bytes);
        }
    }

    private static void requireMethod(String method, String wanted) throws Refusal {
        if (!method.equals(wanted)) {
            throw new Refusal(405, "method_not_allowed", "this endpoint takes " + wanted);
        }
    }

    /** Reads the body, refusing it once it passes BODY_LIMIT_BYTES. */
    private static byte[] readBody(HttpExchange exchange) throws IOException, Refusal {
        // Read one byte past the limit: getting it means the body is too big,
        // without ever buffering more than the limit.
        try (InputStream in = exchange.getRequestBody()) {
            byte[] body = in.readNBytes(BODY_LIMIT_BYTES + 1);
            if (body.length > BODY_LIMIT_BYTES) {
                throw tooLarge();
            }
            return body;
        }
    }

    private static Refusal tooLarge() {
        return new Refusal(413, "body_too_large",
            "the body is over the limit of " + BODY_LIMIT_BYTES + " bytes");
    }

    private static Map<String, Object> parseObject(byte[] body) throws Refusal {
        Object value;
        try {
            String text = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT)
                .decode(ByteBuffer.wrap(body))
                .toString();
            value = Json.parse(text);
        } catch (CharacterCodingException e) {
            throw new Refusal(400, "malformed_json", "the body is not valid UTF-8");
        } catch (Json.MalformedException e) {
            throw new Refusal(400, "malformed_json", e.getMessage());
        } catch (Json.ShapeException e) {
            throw new Refusal(422, "wrong_type", e.getMessage());
        }
        if (!(value instanceof Map<?, ?> map)) {
            throw new Refusal(422, "wrong_type", "the body must be a JSON object");
        }
        @SuppressWarnings("unchecked") // Json makes every object a Map<String, Object>.
        Map<String, Object> fields = (Map<String, Object>) map;
        return fields;
    }

    /** The value as a list of strings, or null if it is anything else. */
    private static List<String> stringList(Object value) {
        if (!(value instanceof List<?> list)) {
            return null;
        }
        List<String> strings = new ArrayList<>(list.size());
        for (Object element : list) {
            if (!(element instanceof String s)) {
                return null;
            }
            strings.add(s);
        }
        return strings;
    }

    // ------------------------------------------------------------------
    // Limits
    // ------------------------------------------------------------------

    /** Largest POST /sessions body; the bench sends about 1 KB. */
    static final int BODY_LIMIT_BYTES = 64 * 1024;

    /** Buffer per session unless --leak-bytes says otherwise. */
    static final int DEFAULT_LEAK_BYTES = 16 * 1024;

    /** Largest --leak-bytes, so a typo cannot ask for gigabytes a request. */
    static final int MAX_LEAK_BYTES = 16 * 1024 * 1024;

    /** How long shutdown waits for exchanges in flight; the contract allows 5 s. */
    static final int SHUTDOWN_GRACE_S = 1;

    /**
     * Handler threads. The JDK server runs handlers on its one dispatcher
     * thread unless given an executor; a small pool keeps two cores busy.
     */
    static final int HANDLER_THREADS = Math.max(4, 2 * Runtime.getRuntime().availableProcessors());

    // ------------------------------------------------------------------
    // Start and graceful shutdown
    // ------------------------------------------------------------------

    private static final String USAGE = "usage: LeakService --port N [--leak-bytes N]";

    public static void main(String[] args) throws IOException {
        int port = -1;
        int leakBytes = DEFAULT_LEAK_BYTES;
        for (int i = 0; i < args.length; i += 2) {
            if (i + 1 >= args.length) {
                fail(args[i] + " needs a value");
            }
            switch (args[i]) {
                case "--port" -> port = parseFlag(args[i], args[i + 1], 65535);
                case "--leak-bytes" -> leakBytes = parseFlag(args[i], args[i + 1], MAX_LEAK_BYTES);
                default -> fail("unknown flag " + args[i]);
            }
        }
        if (port < 0) {
            fail("--port is required (0 lets the OS choose)");
        }

        // Without TCP_NODELAY the JDK server's separate header and body
        // writes meet the client's delayed ACK, and every keep-alive request
        // waits about 40 ms: the service would be slow for a reason that has
        // nothing to do with the leak. The property must be set before the
        // server classes load.
        System.setProperty("sun.net.httpserver.nodelay", "true");

        // Loopback only: the book never listens beyond this machine.
        InetSocketAddress address = new InetSocketAddress(InetAddress.getLoopbackAddress(), port);
        HttpServer server = HttpServer.create(address, 0);
        ExecutorService handlers = Executors.newFixedThreadPool(HANDLER_THREADS);
        final int leakBytesPerSession = leakBytes;
        server.createContext("/", exchange -> handle(exchange, leakBytesPerSession));
        server.setExecutor(handlers);
        server.start();

        System.out.println("listening on 127.0.0.1:" + server.getAddress().getPort());
        System.out.flush();
        System.err.println("LeakService: leak_bytes=" + leakBytes
            + " max_heap_bytes=" + Runtime.getRuntime().maxMemory());

        // SIGTERM and SIGINT run shutdown hooks: stop accepting, give
        // exchanges in flight SHUTDOWN_GRACE_S, then let the JVM exit.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.stop(SHUTDOWN_GRACE_S);
            handlers.shutdown();
            try {
                handlers.awaitTermination(SHUTDOWN_GRACE_S, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            System.err.println("LeakService: stopped");
        }));
    }

    private static int parseFlag(String flag, String value, int max) {
        if (!value.matches("[0-9]{1,9}") || Integer.parseInt(value) > max) {
            fail(flag + " takes an integer from 0 to " + max + ", not \"" + value + "\"");
        }
        return Integer.parseInt(value);
    }

    private static void fail(String message) {
        System.err.println("LeakService: " + message + "\n" + USAGE);
        System.exit(2);
    }
}
