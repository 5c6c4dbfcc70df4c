// Health check of the integrators' FHIR server (HAPI FHIR, docker-compose.yml). The HAPI image is
// distroless: no shell, curl or wget, only its Java runtime, which runs this single source file
// (`java FhirReady.java [URL]`). Ready means: GET <base>/metadata answers 200 with a
// CapabilityStatement within 5 s. Exit 0 when ready, 1 otherwise (the reason on stderr).
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;

public class FhirReady {
    public static void main(String[] args) {
        String base = args.length > 0 ? args[0] : "http://127.0.0.1:8080/fhir";
        try {
            HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
            HttpRequest request = HttpRequest.newBuilder(URI.create(base.replaceAll("/+$", "") + "/metadata"))
                    .header("Accept", "application/fhir+json").timeout(Duration.ofSeconds(5)).GET().build();
            HttpResponse<String> response = client.send(request, HttpResponse.BodyHandlers.ofString());
            if (response.statusCode() != 200) {
                System.err.println("not ready: HTTP " + response.statusCode());
                System.exit(1);
            }
            if (!response.body().matches("(?s).*\"resourceType\"\\s*:\\s*\"CapabilityStatement\".*")) {
                System.err.println("not ready: no CapabilityStatement");
                System.exit(1);
            }
            System.exit(0);
        } catch (Exception e) {
            System.err.println("not ready: " + e);
            System.exit(1);
        }
    }
}
