document.querySelector('#app').innerHTML += `<p>Built with Vite ${import.meta.env.MODE}</p>`
