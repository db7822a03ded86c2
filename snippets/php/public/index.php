<?php
// The legacy JSON API: one front controller behind nginx and php-fpm, written
// the way a small production PHP API is written (no framework). It serves the
// same API as rust/fastjson-api: GET /json and POST /statuses.
//
// Every request runs this script from the top in a php-fpm worker process;
// OPcache keeps the compiled script, but nothing else outlives the request.

declare(strict_types=1);

// --- limits ----------------------------------------------------------------

// The largest body accepted: 2 MiB, the same as fastjson-api's
// BODY_LIMIT_BYTES and nginx's client_max_body_size. nginx answers an
// over-limit body before this script runs; the check here is the second line.
const BODY_LIMIT_BYTES = 2 * 1024 * 1024;
// json_decode's depth: the innermost value counts as a level, so at most 127
// arrays and objects nest, the same as fastjson-api.
const JSON_DEPTH_LIMIT = 128;
const TOP_HASHTAGS = 10;
const U32_MAX = 4294967295;

// --- errors ----------------------------------------------------------------

final class ApiError extends Exception
{
    public function __construct(
        public readonly int $status,
        public readonly string $kind,
        string $detail,
        public readonly ?string $allow = null,
    ) {
        parent::__construct($detail);
    }
}

function wrongType(string $path, string $expected): ApiError
{
    return new ApiError(422, 'wrong_type', "the JSON does not have the expected shape: $path must be $expected");
}

// --- responses -------------------------------------------------------------

function sendJson(int $status, array|object $body): void
{
    $bytes = json_encode($body, JSON_THROW_ON_ERROR | JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES);
    http_response_code($status);
    header('Content-Type: application/json');
    // php-fpm does not set Content-Length; without it nginx would answer
    // with chunked encoding, and TechEmpower's test expects a length.
    header('Content-Length: ' . strlen($bytes));
    echo $bytes;
}

function sendError(ApiError $e): void
{
    if ($e->allow !== null) {
        header('Allow: ' . $e->allow);
    }
    sendJson($e->status, ['error' => $e->kind, 'detail' => $e->getMessage()]);
}

// --- validation ------------------------------------------------------------

// json_decode with objects as stdClass, not associative arrays: an array
// would make `{}` and `[]` the same thing, and the API needs to tell them apart.

function requireObject(object $parent, string $field, string $path): object
{
    $value = $parent->$field ?? null;
    if (!$value instanceof stdClass) {
        throw wrongType("$path.$field", 'an object');
    }
    return $value;
}

function requireString(object $parent, string $field, string $path): string
{
    $value = $parent->$field ?? null;
    if (!is_string($value)) {
        throw wrongType("$path.$field", 'a string');
    }
    return $value;
}

function requireU32(object $parent, string $field, string $path): int
{
    $value = $parent->$field ?? null;
    // is_int: json_decode gives a float for 1.0, 1e2 and for integers past
    // PHP_INT_MAX, and all of them are refused.
    if (!is_int($value) || $value < 0 || $value > U32_MAX) {
        throw wrongType("$path.$field", 'an integer from 0 to 4294967295');
    }
    return $value;
}

function requireList(object $parent, string $field, string $path): array
{
    $value = $parent->$field ?? null;
    if (!is_array($value)) {
        throw wrongType("$path.$field", 'an array');
    }
    return $value;
}

// --- the summary -----------------------------------------------------------

function summarise(string $body): array
{
    try {
        $timeline = json_decode($body, false, JSON_DEPTH_LIMIT, JSON_THROW_ON_ERROR);
    } catch (JsonException $e) {
        throw new ApiError(400, 'malformed_json', 'the body is not valid JSON: ' . $e->getMessage());
    }
    if (!$timeline instanceof stdClass) {
        throw wrongType('the body', 'an object');
    }

    $statuses = requireList($timeline, 'statuses', 'body');
    $retweets = 0;
    $totalFollowers = 0;
    $totalRetweetCount = 0;
    $textChars = 0;
    $users = [];
    $languages = [];
    $tags = [];

    foreach ($statuses as $i => $status) {
        $path = "statuses[$i]";
        if (!$status instanceof stdClass) {
            throw wrongType($path, 'an object');
        }
        requireString($status, 'id_str', $path);
        $text = requireString($status, 'text', $path);
        $lang = requireString($status, 'lang', $path);
        $retweetCount = requireU32($status, 'retweet_count', $path);
        $user = requireObject($status, 'user', $path);
        $userId = requireString($user, 'id_str', "$path.user");
        $followers = requireU32($user, 'followers_count', "$path.user");
        $entities = requireObject($status, 'entities', $path);
        $hashtags = requireList($entities, 'hashtags', "$path.entities");
        $retweeted = $status->retweeted_status ?? null;
        if ($retweeted !== null && !$retweeted instanceof stdClass) {
            throw wrongType("$path.retweeted_status", 'an object or null');
        }

        $tagTexts = [];
        foreach ($hashtags as $j => $hashtag) {
            if (!$hashtag instanceof stdClass) {
                throw wrongType("$path.entities.hashtags[$j]", 'an object');
            }
            $tagTexts[] = requireString($hashtag, 'text', "$path.entities.hashtags[$j]");
        }

        $retweets += $retweeted === null ? 0 : 1;
        $totalFollowers += $followers;
        $totalRetweetCount += $retweetCount;
        // Code points, as Rust's chars().count(): strlen would count bytes.
        $textChars += mb_strlen($text, 'UTF-8');
        $users[$userId] = true;
        $languages[$lang] = ($languages[$lang] ?? 0) + 1;
        foreach ($tagTexts as $tag) {
            $tags[$tag] = ($tags[$tag] ?? 0) + 1;
        }
    }

    // PHP turns a numeric-string key such as "2014" into the integer 2014, so
    // keys are cast back to strings and compared as strings (byte order).
    ksort($languages, SORT_STRING);
    $ranked = [];
    foreach ($tags as $tag => $count) {
        $ranked[] = ['tag' => (string) $tag, 'count' => $count];
    }
    // Count descending, then tag ascending in byte order (strcmp), as Rust's
    // str ordering gives it.
    usort($ranked, fn (array $a, array $b): int =>
        $b['count'] <=> $a['count'] ?: strcmp($a['tag'], $b['tag']));

    return [
        'statuses' => count($statuses),
        'retweets' => $retweets,
        'users' => count($users),
        'total_followers' => $totalFollowers,
        'total_retweet_count' => $totalRetweetCount,
        'text_chars' => $textChars,
        'languages' => languagesObject($languages),
        'top_hashtags' => array_slice($ranked, 0, TOP_HASHTAGS),
    ];
}

// The counts per language as a JSON object, whatever the keys. An empty array
// would encode as `[]` and one keyed 0, 1, ... (a lang "0") as a list, so
// those are cast to an object; but the cast drops keys that start with a NUL
// byte (PHP reserves them for private properties), so any other array stays
// an array, which json_encode writes as an object with every key.
function languagesObject(array $languages): array|stdClass
{
    if ($languages === [] || array_is_list($languages)) {
        return (object) $languages;
    }
    return $languages;
}

// --- handlers --------------------------------------------------------------

function handleJson(): void
{
    // A new array encoded per request: TechEmpower forbids caching the bytes.
    sendJson(200, ['message' => 'Hello, World!']);
}

function handleStatuses(): void
{
    $declared = $_SERVER['CONTENT_LENGTH'] ?? '';
    if ($declared !== '' && (int) $declared > BODY_LIMIT_BYTES) {
        throw new ApiError(413, 'body_too_large', 'the body is larger than ' . BODY_LIMIT_BYTES . ' bytes (BODY_LIMIT_BYTES)');
    }
    $mediaType = strtolower(trim(explode(';', $_SERVER['CONTENT_TYPE'] ?? '')[0]));
    if ($mediaType !== 'application/json') {
        throw new ApiError(415, 'unsupported_media_type', 'the Content-Type must be application/json');
    }
    // Read one byte past the limit, never more, to tell "at the limit" from
    // "over it" without holding an oversized body.
    $body = file_get_contents('php://input', false, null, 0, BODY_LIMIT_BYTES + 1);
    if ($body === false) {
        throw new ApiError(400, 'malformed_json', 'the body could not be read');
    }
    if (strlen($body) > BODY_LIMIT_BYTES) {
        throw new ApiError(413, 'body_too_large', 'the body is larger than ' . BODY_LIMIT_BYTES . ' bytes (BODY_LIMIT_BYTES)');
    }
    sendJson(200, summarise($body));
}

// --- routing ---------------------------------------------------------------

try {
    if (!function_exists('mb_strlen')) {
        // Debian ships mbstring as its own package; php.ini loads it.
        throw new ApiError(500, 'server_misconfigured', 'the mbstring extension is not loaded: apt-get install php8.2-mbstring');
    }
    $path = parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH);
    $method = $_SERVER['REQUEST_METHOD'] ?? 'GET';
    match ($path) {
        '/json' => $method === 'GET'
            ? handleJson()
            : throw new ApiError(405, 'method_not_allowed', 'this path answers GET only', 'GET'),
        '/statuses' => $method === 'POST'
            ? handleStatuses()
            : throw new ApiError(405, 'method_not_allowed', 'this path answers POST only', 'POST'),
        default => throw new ApiError(404, 'not_found', 'no such path; the paths are /json and /statuses'),
    };
} catch (ApiError $e) {
    sendError($e);
} catch (Throwable $e) {
    // A bug, not bad input: log it (RUN_DIR/php-errors.log) and answer JSON.
    error_log('index.php: ' . $e);
    sendError(new ApiError(500, 'internal_error', 'the server failed; see php-errors.log'));
}
