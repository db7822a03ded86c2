import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReferenceArray;

/**
 * The GC chapter's legacy order service: a large long-lived cache that fills
 * the old generation, a per-request object graph that dies young, and one
 * cache entry replaced per request so that old objects keep dying and new
 * ones keep being promoted. The collector has real work, and its pauses show
 * in the latency of whichever requests are in flight.
 *
 * <p>Run: {@code javac -d out *.java && java -Xmx512m -cp out GcService --port 0}
 */
public final class GcService {

    // =====================================================================
    // Types
    // =====================================================================

    /** The request body. Unknown fields are skipped, as Jackson would. */
    static final class OrdersRequest {
        List<Status> statuses; // null when missing: a 422, not an empty batch
    }

    /** Absent or null fields keep these defaults, as in the Go and Rust services. */
    static final class Status {
        String text = "";
        User user = new User();
        Entities entities = new Entities();
    }

    static final class User {
        long followersCount;
    }

    static final class Entities {
        List<Hashtag> hashtags = new ArrayList<>();
    }

    static final class Hashtag {
        String text = "";
    }

    /** The per-request object graph: the garbage that dies young. */
    record OrderRecord(List<String> words, List<String> hashtags, long followers) {}

    record OrdersAnswer(int statuses, int words, int hashtags, long followers) {
        String toJson() {
            return "{\"statuses\":" + statuses + ",\"words\":" + words
                    + ",\"hashtags\":" + hashtags + ",\"followers\":" + followers + "}";
        }
    }

    /** A 4xx answer: its status, kind and sentence. */
    static final class RequestError extends Exception {
        final int status;
        final String kind;

        RequestError(int status, String kind, String detail) {
            super(detail);
            this.status = status;
            this.kind = kind;
        }
    }

    /**
     * One entry of the long-lived cache: a few small objects and strings, the
     * same strings the Go and Rust services build. Nothing reads an entry after
     * it is built; it is there to occupy the old generation.
     */
    record CacheEntry(long id, String key, Customer customer, List<OrderLine> lines, String note) {}

    record Customer(String name, String email, Address address) {}

    record Address(String street, String city, String zip) {}

    record OrderLine(String sku, int quantity, long priceCents) {}

    private static final String[] CITIES = {
        "Lisbon", "Porto", "Lyon", "Leeds", "Turin", "Ghent", "Graz", "Malmo"
    };

    static CacheEntry buildEntry(long index) {
        List<OrderLine> lines = new ArrayList<>(ORDER_LINES_PER_ENTRY);
        for (int line = 0; line < ORDER_LINES_PER_ENTRY; line++) {
            lines.add(new OrderLine(
                    "SKU-" + index + "-" + line,
                    (int) ((index + line) % 9 + 1),
                    (index * 31 + line * 17L) % 10_000));
        }
        StringBuilder note = new StringBuilder("order ").append(index).append(' ');
        while (note.length() < NOTE_CHARS) {
            note.append('-');
        }
        return new CacheEntry(
                index,
                "order-" + zeroPadded(index, 8),
                new Customer(
                        "Customer " + (index % 9973),
                        "customer" + index + "@example.test",
                        new Address(
                                (index % 997) + " Legacy Street",
                                CITIES[(int) (index % CITIES.length)],
                                zeroPadded(index % 100_000, 5))),
                lines,
                note.toString());
    }

    private static String zeroPadded(long value, int width) {
        String digits = Long.toString(value);
        return "0".repeat(Math.max(0, width - digits.length())) + digits;
    }

    /** The long-lived working set; a slot is swapped whole, never edited. */
    static final class Cache {
        private final AtomicReferenceArray<CacheEntry> slots;
        private final AtomicLong requestsServed = new AtomicLong();

        Cache(int entries) {
            slots = new AtomicReferenceArray<>(entries);
            for (int i = 0; i < entries; i++) {
                slots.set(i, buildEntry(i));
            }
        }

        /** Replaces the slot the request counter points at; the old entry dies old. */
        void replaceNext() {
            long counter = requestsServed.getAndIncrement();
            slots.set((int) (counter % slots.length()), buildEntry(counter));
        }
    }

    // =====================================================================
    // Handlers
    // =====================================================================

    /** Parses and answers one batch, or says what is wrong with it. */
    static OrdersAnswer answerOrders(byte[] body) throws RequestError {
        String text;
        try {
            // REPORT, not the default REPLACE: bad bytes are refused, as the
            // Go and Rust services refuse them.
            text = StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(body))
                    .toString();
        } catch (CharacterCodingException e) {
            throw new RequestError(400, "malformed_json", "the body is not UTF-8");
        }

        OrdersRequest request;
        try {
            JsonReader.validate(text);
            request = readOrdersRequest(new JsonReader(text));
        } catch (JsonReader.SyntaxError e) {
            throw new RequestError(400, "malformed_json",
                    "the body is not valid JSON: " + e.getMessage());
        } catch (JsonReader.TypeError e) {
            throw new RequestError(422, "wrong_type",
                    "the body does not match the orders schema: " + e.getMessage());
        }
        if (request == null || request.statuses == null) {
            throw new RequestError(422, "missing_field", "the body needs a \"statuses\" array");
        }

        List<OrderRecord> records = new ArrayList<>(request.statuses.size());
        for (Status status : request.statuses) {
            List<String> hashtags = new ArrayList<>(status.entities.hashtags.size());
            for (Hashtag tag : status.entities.hashtags) {
                hashtags.add(tag.text);
            }
            records.add(new OrderRecord(words(status.text), hashtags, status.user.followersCount));
        }

        int words = 0;
        int tags = 0;
        long followers = 0; // wraps on overflow, as Go's int64 and the Rust service do
        for (OrderRecord record : records) {
            words += record.words().size();
            tags += record.hashtags().size();
            followers += record.followers();
        }
        return new OrdersAnswer(records.size(), words, tags, followers);
    }

    /**
     * Splits on Unicode White_Space, which is what Go's strings.Fields and
     * Rust's split_whitespace use. Java's own \s and Character.isWhitespace
     * each disagree with that set (the ideographic space in Japanese statuses,
     * the no-break spaces), so the set is spelled out.
     */
    static List<String> words(String text) {
        List<String> words = new ArrayList<>();
        int start = -1;
        for (int i = 0; i <= text.length(); i++) {
            boolean space = i == text.length() || isUnicodeWhiteSpace(text.charAt(i));
            if (space && start >= 0) {
                words.add(text.substring(start, i));
                start = -1;
            } else if (!space && start < 0) {
                start = i;
            }
        }
        return words;
    }

    static boolean isUnicodeWhiteSpace(char c) {
        return (c >= '\t' && c <= '\r') || c == ' ' || c == '\u0085' || c == '\u00a0'
                || c == '\u1680' || (c >= '\u2000' && c <= '\u200a') || c == '\u2028'
                || c == '\u2029' || c == '\u202f' || c == '\u205f' || c == '\u3000';
    }

    // The binders below turn the reader's walk into typed objects, one per
    // class, the way a generated Jackson deserializer would.

    static OrdersRequest readOrdersRequest(JsonReader reader)
            throws JsonReader.TypeError, JsonReader.SyntaxError {
        if (reader.nextIsNull()) {
            return null;
        }
        OrdersRequest request = new OrdersRequest();
        reader.readObject("body", (key, r) -> {
            if (!key.equals("statuses")) {
                return false;
            }
            request.statuses = r.nextIsNull()
                    ? null
                    : r.readArray("statuses", JsonReader.orDefault(GcService::readStatus, Status::new));
            return true;
        });
        return request;
    }

    static Status readStatus(JsonReader reader) throws JsonReader.TypeError, JsonReader.SyntaxError {
        Status status = new Status();
        reader.readObject("status", (key, r) -> {
            switch (key) {
                case "text" -> status.text = r.nextIsNull() ? "" : r.readString("text");
                case "user" -> status.user = r.nextIsNull() ? new User() : readUser(r);
                case "entities" -> status.entities = r.nextIsNull() ? new Entities() : readEntities(r);
                default -> {
                    return false;
                }
            }
            return true;
        });
        return status;
    }

    static User readUser(JsonReader reader) throws JsonReader.TypeError, JsonReader.SyntaxError {
        User user = new User();
        reader.readObject("user", (key, r) -> {
            if (!key.equals("followers_count")) {
                return false;
            }
            user.followersCount = r.nextIsNull() ? 0 : r.readLong("followers_count");
            return true;
        });
        return user;
    }

    static Entities readEntities(JsonReader reader) throws JsonReader.TypeError, JsonReader.SyntaxError {
        Entities entities = new Entities();
        reader.readObject("entities", (key, r) -> {
            if (!key.equals("hashtags")) {
                return false;
            }
            entities.hashtags = r.readArray("hashtags",
                    JsonReader.orDefault(GcService::readHashtag, Hashtag::new));
            return true;
        });
        return entities;
    }

    static Hashtag readHashtag(JsonReader reader) throws JsonReader.TypeError, JsonReader.SyntaxError {
        Hashtag hashtag = new Hashtag();
        reader.readObject("hashtag", (key, r) -> {
            if (!key.equals("text")) {
                return false;
            }
            hashtag.text = r.nextIsNull() ? "" : r.readString("text");
            return true;
        });
        return hashtag;
    }

    /** POST /orders: answer the batch and replace one cache entry. */
    static void handleOrders(HttpExchange exchange, Cache cache) throws IOException {
        if (!exchange.getRequestMethod().equals("POST")) {
            sendError(exchange, new RequestError(405, "method_not_allowed", "use POST for /orders"));
            return;
        }
        try {
            OrdersAnswer answer = answerOrders(readBody(exchange));
            cache.replaceNext();
            send(exchange, 200, answer.toJson());
        } catch (RequestError e) {
            sendError(exchange, e);
        }
    }

    /** Reads at most BODY_LIMIT_BYTES; a longer body is a 413 before parsing. */
    static byte[] readBody(HttpExchange exchange) throws IOException, RequestError {
        RequestError tooLarge = new RequestError(413, "body_too_large",
                "the body is over " + BODY_LIMIT_BYTES + " bytes");
        String declared = exchange.getRequestHeaders().getFirst("Content-Length");
        if (declared != null) {
            try {
                if (Long.parseLong(declared.trim()) > BODY_LIMIT_BYTES) {
                    throw tooLarge;
                }
            } catch (NumberFormatException e) {
                throw new RequestError(400, "bad_body", "Content-Length is not a number");
            }
        }
        try (InputStream in = exchange.getRequestBody()) {
            byte[] body = in.readNBytes(BODY_LIMIT_BYTES + 1);
            if (body.length > BODY_LIMIT_BYTES) {
                throw tooLarge;
            }
            return body;
        }
    }

    /** GET /health: the bench's readiness probe. */
    static void handleHealth(HttpExchange exchange) throws IOException {
        if (!exchange.getRequestMethod().equals("GET")) {
            sendError(exchange, new RequestError(405, "method_not_allowed", "use GET for /health"));
            return;
        }
        send(exchange, 200, "{\"status\":\"ok\"}");
    }

    static void sendError(HttpExchange exchange, RequestError e) throws IOException {
        send(exchange, e.status,
                "{\"error\":\"" + e.kind + "\",\"detail\":" + jsonString(e.getMessage()) + "}");
    }

    static void send(HttpExchange exchange, int status, String json) throws IOException {
        byte[] bytes = json.getBytes(StandardCharsets.UTF_8);
        exchange.getResponseHeaders().set("Content-Type", "application/json");
        exchange.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(bytes);
        }
    }

    static String jsonString(String value) {
        StringBuilder out = new StringBuilder("\"");
        for (char c : value.toCharArray()) {
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.append('"').toString();
    }

    // =====================================================================
    // Limits
    // =====================================================================

    /** Larger bodies get a 413 before any parsing. */
    static final int BODY_LIMIT_BYTES = 1024 * 1024;
    /** About 190 MiB of live objects: fits -Xmx512m under G1, Parallel and ZGC. */
    static final int DEFAULT_CACHE_ENTRIES = 200_000;
    static final int ORDER_LINES_PER_ENTRY = 4;
    /** Padding that brings an entry to roughly 1 KB of heap. */
    static final int NOTE_CHARS = 96;
    /** Connections the kernel queues while every worker is busy, e.g. in a pause. */
    static final int ACCEPT_BACKLOG = 1024;
    /** SIGTERM or SIGINT wait this long for requests in flight (contract: 5 s). */
    static final int SHUTDOWN_GRACE_S = 2;

    // =====================================================================
    // Start and graceful shutdown
    // =====================================================================

    public static void main(String[] args) throws IOException, InterruptedException {
        int port = 0;
        int cacheEntries = DEFAULT_CACHE_ENTRIES;
        int threads = Runtime.getRuntime().availableProcessors() * 2;
        try {
            for (int i = 0; i < args.length; i += 2) {
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException(args[i] + " needs a value");
                }
                int value = Integer.parseInt(args[i + 1]);
                switch (args[i]) {
                    case "--port" -> port = value;
                    case "--cache-entries" -> cacheEntries = value;
                    case "--threads" -> threads = value;
                    default -> throw new IllegalArgumentException("unknown flag " + args[i]);
                }
            }
            if (port < 0 || port > 65535 || cacheEntries < 1 || threads < 1) {
                throw new IllegalArgumentException("--port must be 0-65535, the others at least 1");
            }
        } catch (IllegalArgumentException e) {
            System.err.println("ERROR: " + e.getMessage());
            System.err.println("usage: GcService [--port N] [--cache-entries N] [--threads N]");
            System.exit(2);
        }

        Cache cache = new Cache(cacheEntries);
        Runtime runtime = Runtime.getRuntime();
        System.err.printf("cache filled: entries=%d heap_used_mib=%d heap_max_mib=%d%n",
                cacheEntries,
                (runtime.totalMemory() - runtime.freeMemory()) >> 20,
                runtime.maxMemory() >> 20);

        // Without TCP_NODELAY the JDK server's separate header and body writes
        // meet the client's delayed ACK, and every answer waits ~40 ms: the
        // chapter would measure Nagle's algorithm instead of the collector.
        // The property is read once, when the first server is created.
        System.setProperty("sun.net.httpserver.nodelay", "true");
        InetSocketAddress loopback =
                new InetSocketAddress(InetAddress.getByAddress(new byte[] {127, 0, 0, 1}), port);
        HttpServer server = HttpServer.create(loopback, ACCEPT_BACKLOG);
        ExecutorService workers = Executors.newFixedThreadPool(threads);
        server.setExecutor(workers);
        server.createContext("/orders", exchange -> handleOrders(exchange, cache));
        server.createContext("/health", GcService::handleHealth);
        server.createContext("/", exchange -> sendError(exchange, new RequestError(404, "not_found",
                "the endpoints are POST /orders and GET /health")));

        // The JVM turns SIGTERM and SIGINT into running its shutdown hooks.
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.err.println("shutting down");
            server.stop(SHUTDOWN_GRACE_S);
            workers.shutdown();
            try {
                workers.awaitTermination(1, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }));

        server.start();
        System.out.println("listening on 127.0.0.1:" + server.getAddress().getPort());
        System.out.flush();
    }
}
